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

    /// What one round of `run` does.
    enum Round: Equatable {
        /// Renew every held lease (one write), which also reads their flags.
        case renew
        /// Read every held lease's flags (one read): lost, cancelled.
        case poll
        /// Nothing this round.
        case wait
    }

    /// The round at `now`, pure: renew every `beatEvery` (a third of the
    /// lease), or sooner, at most once a second, when a lease held (`expiries`)
    /// is within two beats of lapsing (a job claimed since the last renewal);
    /// else poll when asked to verify (a batched write matched fewer jobs), or
    /// without a change stream every `pollEvery`; else wait.
    static func round(now: ContinuousClock.Instant, lastBeat: ContinuousClock.Instant, lastPoll: ContinuousClock.Instant,
                      beatEvery: Duration, expiries: [ContinuousClock.Instant], verify: Bool, streaming: Bool,
                      pollEvery: Duration) -> Round {
        guard !expiries.isEmpty else { return .wait }
        let dueSoon = expiries.contains { $0 - now < beatEvery * 2 }
        if now - lastBeat >= beatEvery || (dueSoon && now - lastBeat >= .seconds(1)) { return .renew }
        if verify || (!streaming && now - lastPoll >= pollEvery) { return .poll }
        return .wait
    }

    /// What a round's answer means for the leases `held`: a token the
    /// answer shows held (with its cancel flag) or held unread is kept, and
    /// renewed after a renewal (after contradicting answers, only when the
    /// write matched every lease); a cancel flag set is a cancel; a token the
    /// answers contradict each other on is neither (`unsure`); any other is lost.
    static func verdict(held: Set<String>, answer: LeaseAnswer, renewal: Bool)
        -> (renewed: Set<String>, cancelled: Set<String>, lost: Set<String>) {
        let kept = held.filter { answer.held[$0] != nil || answer.heldUnread.contains($0) }
        let renewed = renewal && (answer.contradiction == nil || answer.renewalMatchedAll) ? kept : []
        return (renewed, held.filter { answer.held[$0] == true }, held.filter { answer.lost($0) })
    }

    /// Renews and polls until `stopped()`.
    func run(until stopped: @Sendable () -> Bool) async {
        var lastBeat = ContinuousClock.now
        var lastPoll = ContinuousClock.now
        let beatEvery = Duration.seconds(Double(leaseSeconds) / 3)
        while !stopped() {
            try? await Task.sleep(for: .milliseconds(200))
            let current = held.withLock { $0 }
            let now = ContinuousClock.now
            let round = Self.round(now: now, lastBeat: lastBeat, lastPoll: lastPoll, beatEvery: beatEvery,
                                   expiries: current.values.map { $0.lease.expiry },
                                   verify: !current.isEmpty && verify.withLock({ v in defer { v = false }; return v }),
                                   streaming: streaming.withLock { $0 }, pollEvery: .seconds(pollSeconds))
            do {
                switch round {
                case .renew:
                    lastBeat = now
                    lastPoll = now
                    let answer = try await store.renewLeases(Array(current.keys), leaseSeconds: leaseSeconds,
                                                             released: released)
                    apply(answer, to: current, renewedAt: now)
                case .poll:
                    // No change stream, or a lease may be lost: one read for all running jobs' flags.
                    lastPoll = now
                    apply(try await store.leaseFlags(Array(current.keys), released: released), to: current, renewedAt: nil)
                case .wait:
                    break
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
        let v = Self.verdict(held: Set(current.keys), answer: answer, renewal: renewedAt != nil)
        for (token, h) in current {
            // Released meanwhile (the job ended) is not lost.
            if v.lost.contains(token), held.withLock({ $0[token] != nil }) { h.control.fence() }
            if let renewedAt, v.renewed.contains(token) { h.lease.renewed(sentAt: renewedAt) }
            if v.cancelled.contains(token) { h.control.stop(.cancelled) }
        }
    }
}
