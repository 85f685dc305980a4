#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import RunnerCore

/// The lease as this runner knows it: valid until LEASE_SECONDS after the
/// claim, or after the last heartbeat the database acknowledged (counted from
/// when that heartbeat was sent, so never later than the database's own
/// `lease.expiresAt`).
final class LeaseClock: Sendable {
    private let validUntil: Locked<ContinuousClock.Instant>
    private let length: Duration

    init(start: ContinuousClock.Instant, leaseSeconds: Int) {
        length = .seconds(leaseSeconds)
        validUntil = Locked(start + .seconds(leaseSeconds))
    }

    /// A heartbeat sent at `sentAt` was acknowledged.
    func renewed(sentAt: ContinuousClock.Instant) {
        validUntil.withLock { $0 = max($0, sentAt + length) }
    }

    var expiry: ContinuousClock.Instant { validUntil.withLock { $0 } }

    /// Whether the lease may have lapsed by now, or will within `margin`
    /// (`fenceMargin`): the child must then not push.
    func mayLapse(within margin: Duration) -> Bool { ContinuousClock.now >= expiry - margin }

    /// How long before the lease lapses the runner stops the child itself:
    /// a tenth of the lease, at least 0.5 s (SIGKILL acts at once), so the
    /// child is dead before another runner could claim the job, while a
    /// renewal that is merely slow still has most of a lease third to land.
    static func fenceMargin(leaseSeconds: Int) -> Duration {
        max(.milliseconds(500), .milliseconds(leaseSeconds * 100))
    }
}

/// Stops a job's child on its own clock: the deadline (JOB_TIMEOUT_SECONDS),
/// a forced shutdown, a lease about to lapse (self-fencing) and any stop
/// reason another task set (cancel, lease lost), with SIGTERM then SIGKILL
/// after the grace; a fenced child (lease lost or about to lapse) gets
/// SIGKILL at once, even during a checkpoint another stop began. It never
/// waits on the database, so a hung or partitioned
/// database cannot suspend a timeout or let a fenced-out child push.
struct Enforcer {
    let child: ChildProcess
    let control: ChildControl
    let deadline: ContinuousClock.Instant
    let lease: LeaseClock
    let fenceMargin: Duration
    let shutdown: ShutdownSignal
    let logger: Logger
    var grace = Duration.seconds(2)
    var tick = Duration.milliseconds(100)
    /// The stops after which the child first checkpoints its partial work
    /// (CHECKPOINT_ON), and how long it may (CHECKPOINT_GRACE_SECONDS).
    var checkpointOn: Set<CheckpointReason> = []
    var checkpointGrace = Duration.seconds(60)
    /// Asks the child to stop and checkpoint (a `ChildStop` line on its
    /// stdin); false when the line could not be written.
    var requestCheckpoint: @Sendable (StopReason) async -> Bool = { _ in false }
    /// Whether the child may still have partial work to keep: false once it
    /// reported its result (its stop is then a plain one, without the
    /// checkpoint's grace).
    var mayCheckpoint: @Sendable () -> Bool = { true }
    /// How long a child has to take the stop line (its `stopping` event)
    /// before the plain stop, SIGTERM then SIGKILL, follows.
    var acknowledgeWithin = Duration.seconds(5)

    func run() async {
        var stopSent: ContinuousClock.Instant?
        // Nil until the first stop; then whether the child was asked to checkpoint.
        var checkpointing: Bool?
        var killed = false
        while !control.exited {
            try? await Task.sleep(for: tick)
            // Woken early (cancelled) because the child exited: nothing left to enforce.
            if control.exited { break }
            let now = ContinuousClock.now
            let expiry = lease.expiry
            if let found = Self.stopReason(now: now, deadline: deadline, leaseExpiry: expiry,
                                           fenceMargin: fenceMargin, forcedShutdown: shutdown.isForced), found != .leaseLost {
                control.stop(found)
            }
            // Checked whatever stop came first (the deadline's included).
            if now >= expiry - fenceMargin, !control.fenced {
                logger.error("the lease could not be renewed before it lapses; stopping the child (self-fencing)")
                control.fence()
            }
            // A lease lost or about to lapse: SIGKILL at once, whatever stop came
            // first, a checkpoint under way included (the child must not push).
            if control.fenced {
                if !killed {
                    logger.notice("stopping child", metadata: ["reason": "leaseLost", "checkpoint": "false"])
                    killed = true
                }
                child.signalGroup(SIGKILL)
                continue
            }
            let reason = control.reason
            // A child that does not take the stop line (not reading its stdin) gets the plain stop.
            if checkpointing == true, let sent = stopSent, !control.stopAcknowledged, now - sent >= acknowledgeWithin {
                logger.notice("the child did not take the stop line; stopping it with SIGTERM")
                checkpointing = false
                stopSent = now
                child.signalGroup(SIGTERM)
                continue
            }
            if checkpointing == nil, let reason {
                checkpointing = mayCheckpoint() && (reason.checkpointReason.map(checkpointOn.contains) ?? false)
            }
            guard let action = Self.action(now: now, reason: reason, stopSentAt: stopSent, grace: grace,
                                           checkpointGrace: checkpointing == true ? checkpointGrace : nil,
                                           forced: shutdown.isForced) else { continue }
            if stopSent == nil {
                logger.notice("stopping child", metadata: ["reason": "\(reason.map { "\($0)" } ?? "-")",
                                                           "checkpoint": "\(checkpointing == true)"])
                stopSent = now
            }
            switch action {
            case .signal(let signal): child.signalGroup(signal)
            case .checkpoint:
                if let reason, await !requestCheckpoint(reason) {
                    // The child is not reading its stdin: a plain stop.
                    checkpointing = false
                    child.signalGroup(SIGTERM)
                }
            }
        }
    }

    /// What the Enforcer does at a stop: ask the child to checkpoint, or signal it.
    enum StopAction: Equatable {
        case checkpoint
        case signal(Int32)
    }

    /// The action at `now` for `reason`: with `checkpointGrace` (the stop
    /// checkpoints), first the request, then SIGKILL once that grace has
    /// passed, or at once on a forced shutdown; without, `signal`'s.
    static func action(now: ContinuousClock.Instant, reason: StopReason?, stopSentAt: ContinuousClock.Instant?,
                       grace: Duration, checkpointGrace: Duration?, forced: Bool) -> StopAction? {
        guard reason != nil else { return nil }
        guard let checkpointGrace else {
            return signal(now: now, reason: reason, stopSentAt: stopSentAt, grace: grace).map(StopAction.signal)
        }
        guard let stopSentAt else { return .checkpoint }
        return forced || now - stopSentAt >= checkpointGrace ? .signal(SIGKILL) : nil
    }

    /// Why the child must stop at `now` by the supervisor's own clock, in
    /// order: the deadline, a forced shutdown, the lease within `fenceMargin`
    /// of its expiry (self-fencing). Nil: nothing yet. (`ChildControl` keeps
    /// the first reason set, by this or by another task; a lost lease also
    /// fences it, whatever the first reason was.)
    static func stopReason(now: ContinuousClock.Instant, deadline: ContinuousClock.Instant,
                           leaseExpiry: ContinuousClock.Instant, fenceMargin: Duration,
                           forcedShutdown: Bool) -> StopReason? {
        if now >= deadline { return .timeout }
        if forcedShutdown { return .shutdown }
        if now >= leaseExpiry - fenceMargin { return .leaseLost }
        return nil
    }

    /// The signal to send at `now` for `reason`: the first one at once
    /// (SIGKILL for a lost lease: a child whose lease is gone must not go on
    /// to push, so no grace; else SIGTERM), then SIGKILL once `grace` has
    /// passed since the first (`stopSentAt`). Nil: none now.
    static func signal(now: ContinuousClock.Instant, reason: StopReason?, stopSentAt: ContinuousClock.Instant?,
                       grace: Duration) -> Int32? {
        guard let reason else { return nil }
        guard let stopSentAt else { return reason == .leaseLost ? SIGKILL : SIGTERM }
        return now - stopSentAt >= grace ? SIGKILL : nil
    }
}
