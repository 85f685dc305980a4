import Foundation
import JobStore
import Logging
import RunnerCore

/// The leases of every job this supervisor runs, kept together (issue 15):
/// one renewal per `LEASE_SECONDS/3` for all of them (and their project
/// locks), which also tells which leases were lost; cancellation arrives on
/// the change stream (`cancelRequested(jobId:)`), and only while the stream
/// is down is it read, for all running jobs at once, every
/// `RUNNER_POLL_SECONDS`. Nothing here is per job and per second.
final class LeaseKeeper: Sendable {
    struct Held: Sendable {
        let job: ClaimedJob
        let lease: LeaseClock
        let control: ChildControl
    }

    private let store: JobStore
    private let leaseSeconds: Int
    private let pollSeconds: Double
    private let logger: Logger
    private let held = Locked<[String: Held]>([:])
    private let streaming = Locked(false)
    private let verify = Locked(false)

    private let checks: ServerChecks?

    /// `checks` hears of answers that contradict each other (nil: they are logged only).
    init(store: JobStore, leaseSeconds: Int, pollSeconds: Double, logger: Logger, checks: ServerChecks? = nil) {
        self.store = store
        self.leaseSeconds = leaseSeconds
        self.pollSeconds = pollSeconds
        self.logger = logger
        self.checks = checks
    }

    /// Keeps `job`'s lease from now until `release`.
    func hold(_ job: ClaimedJob, lease: LeaseClock, control: ChildControl) {
        held.withLock { $0[job.token] = Held(job: job, lease: lease, control: control) }
    }

    func release(_ job: ClaimedJob) { _ = held.withLock { $0.removeValue(forKey: job.token) } }

    /// A batched write matched fewer jobs than it covered: some lease is
    /// lost. The next round reads which (one read for all held leases).
    func verifySoon() { verify.withLock { $0 = true } }

    /// Whether the change stream works (cancels arrive on it).
    func setStreaming(_ on: Bool) { streaming.withLock { $0 = on } }

    /// A change event said `jobId`'s cancellation was requested. False when
    /// no job held here has that id (a pending job, or another runner's).
    @discardableResult
    func cancelRequested(jobId: String) -> Bool {
        var found = false
        for h in held.withLock({ Array($0.values) }) where h.job.idText == jobId {
            h.control.stop(.cancelled)
            found = true
        }
        return found
    }

    /// Renews and polls until `stopped()`.
    func run(until stopped: @Sendable () -> Bool) async {
        var lastBeat = ContinuousClock.now
        var lastPoll = ContinuousClock.now
        let beatEvery = Duration.seconds(Double(leaseSeconds) / 3)
        while !stopped() {
            try? await Task.sleep(for: .milliseconds(200))
            let current = held.withLock { $0 }
            guard !current.isEmpty else { continue }
            let now = ContinuousClock.now
            // A job claimed since the last renewal may have used a third of its
            // lease already: renew (all of them) now rather than let it near the
            // self-fencing margin. At most once a second, so an outage is not hammered.
            let dueSoon = current.values.contains { $0.lease.expiry - now < beatEvery * 2 }
            do {
                if now - lastBeat >= beatEvery || (dueSoon && now - lastBeat >= .seconds(1)) {
                    lastBeat = now
                    lastPoll = now
                    let answer = try await store.renewLeases(Array(current.keys), leaseSeconds: leaseSeconds,
                                                             released: released)
                    apply(answer, to: current, renewedAt: now)
                } else if verify.withLock({ v in defer { v = false }; return v })
                            || (!streaming.withLock({ $0 }) && now - lastPoll >= .seconds(pollSeconds)) {
                    // No change stream, or a lease may be lost: one read for all running jobs' flags.
                    lastPoll = now
                    apply(try await store.leaseFlags(Array(current.keys), released: released), to: current, renewedAt: nil)
                }
            } catch {
                logger.warning("lease renewal failed; will retry", metadata: DatabaseRetry.metadata(error))
            }
        }
    }

    /// Whether the job holding `token` has ended here (its lease let go of).
    private var released: @Sendable (String) -> Bool { { [held] token in held.withLock { $0[token] == nil } } }

    /// Renews the held leases' clocks, stops the lost ones and the cancelled
    /// ones. When the answers contradict each other, a lease they do not show
    /// held is neither stopped nor renewed (the child runs on until its own
    /// lease clock says it may have lapsed: self-fencing), and the
    /// contradiction goes to `checks`.
    private func apply(_ answer: LeaseAnswer, to current: [String: Held], renewedAt: ContinuousClock.Instant?) {
        if let c = answer.contradiction {
            if let checks { checks.record(c) } else { logger.error("the database's answers contradict each other", metadata: ["error": "\(c)"]) }
        }
        for (token, h) in current {
            if answer.unsure.contains(token) { continue }
            if answer.heldUnread.contains(token) {
                if let renewedAt { h.lease.renewed(sentAt: renewedAt) }
                continue
            }
            guard let cancel = answer.held[token] else {
                // Released meanwhile (the job ended), or lost.
                if held.withLock({ $0[token] != nil }) { h.control.stop(.leaseLost) }
                continue
            }
            if let renewedAt { h.lease.renewed(sentAt: renewedAt) }
            if cancel { h.control.stop(.cancelled) }
        }
    }
}
