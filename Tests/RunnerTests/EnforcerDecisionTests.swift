#if canImport(Glibc)
import Glibc
#endif
import JobStore
@testable import SupervisorKit
import Testing

/// The Enforcer's and the LeaseKeeper's decisions, as pure functions of an
/// injected clock: instants are a fixed origin plus offsets, nothing sleeps.
@Suite struct EnforcerDecisionTests {
    let t0 = ContinuousClock.now
    func at(_ ms: Int) -> ContinuousClock.Instant { t0 + .milliseconds(ms) }

    func reason(_ now: Int, deadline: Int = 60_000, expiry: Int = 30_000, margin: Int = 3_000,
                forced: Bool = false) -> StopReason? {
        Enforcer.stopReason(now: at(now), deadline: at(deadline), leaseExpiry: at(expiry),
                            fenceMargin: .milliseconds(margin), forcedShutdown: forced)
    }

    @Test func theClockDecidesWhyTheChildStops() {
        #expect(reason(0) == nil)
        #expect(reason(26_999) == nil, "before the fence margin")
        // Self-fencing: the margin before the lease lapses, not at the lapse.
        #expect(reason(27_000) == .leaseLost)
        #expect(reason(29_999) == .leaseLost)
        #expect(reason(10_000, expiry: 12_000) == .leaseLost)
        // A renewal moved the expiry: no fence.
        #expect(reason(27_000, expiry: 40_000) == nil)
        // The deadline, then a forced shutdown, come before the fence.
        #expect(reason(60_000, expiry: 0) == .timeout)
        #expect(reason(59_999, expiry: 100_000) == nil)
        #expect(reason(1_000, forced: true) == .shutdown)
        #expect(reason(60_000, forced: true) == .timeout)
        #expect(reason(28_000, forced: true) == .shutdown)
    }

    @Test func aStoppedChildGetsSIGTERMThenSIGKILLAfterTheGraceButALostLeaseNoGrace() {
        let grace = Duration.seconds(2)
        func signal(_ now: Int, _ reason: StopReason?, sent: Int?) -> Int32? {
            Enforcer.signal(now: at(now), reason: reason, stopSentAt: sent.map(at), grace: grace)
        }
        #expect(signal(0, nil, sent: nil) == nil)
        for r in [StopReason.timeout, .cancelled, .shutdown] {
            #expect(signal(0, r, sent: nil) == SIGTERM, "\(r)")
            #expect(signal(1_999, r, sent: 0) == nil, "\(r): within the grace")
            #expect(signal(2_000, r, sent: 0) == SIGKILL, "\(r): the grace is over")
            #expect(signal(9_000, r, sent: 0) == SIGKILL, "\(r): and again until it exits")
        }
        #expect(signal(0, .leaseLost, sent: nil) == SIGKILL)
    }

    /// A stop that checkpoints (CHECKPOINT_ON) asks the child first and
    /// gives it CHECKPOINT_GRACE_SECONDS, cut short by a forced shutdown.
    @Test func aCheckpointingStopAsksFirstThenKillsAfterItsGrace() {
        func action(_ now: Int, sent: Int?, forced: Bool = false) -> Enforcer.StopAction? {
            Enforcer.action(now: at(now), reason: .timeout, stopSentAt: sent.map(at), grace: .seconds(2),
                            checkpointGrace: .seconds(60), forced: forced)
        }
        #expect(action(0, sent: nil) == .checkpoint)
        #expect(action(2_000, sent: 0) == nil, "not the plain stop's 2 s")
        #expect(action(59_999, sent: 0) == nil)
        #expect(action(60_000, sent: 0) == .signal(SIGKILL))
        #expect(action(1_000, sent: 0, forced: true) == .signal(SIGKILL))
        #expect(Enforcer.action(now: at(0), reason: nil, stopSentAt: nil, grace: .seconds(2), checkpointGrace: .seconds(60),
                                forced: false) == nil)
        #expect(Enforcer.action(now: at(0), reason: .shutdown, stopSentAt: nil, grace: .seconds(2), checkpointGrace: nil,
                                forced: true) == .signal(SIGTERM), "a stop that does not checkpoint is the plain one")
        #expect(StopReason.leaseLost.checkpointReason == nil && StopReason.shutdown.checkpointReason == nil)
        #expect(StopReason.budgetExceeded.checkpointReason == .budget && StopReason.cancelled.checkpointReason == .cancel)
    }

    @Test func leasesAreRenewedTogetherOnTheirClockAndPolledOnlyWhenNeeded() {
        let beat = Duration.seconds(10), poll = Duration.seconds(5)
        func round(_ now: Int, lastBeat: Int = 0, lastPoll: Int = 0, expiries: [Int] = [60_000], verify: Bool = false,
                   streaming: Bool = true) -> LeaseKeeper.Round {
            LeaseKeeper.round(now: at(now), lastBeat: at(lastBeat), lastPoll: at(lastPoll), beatEvery: beat,
                              expiries: expiries.map(at), verify: verify, streaming: streaming, pollEvery: poll)
        }
        #expect(round(20_000, expiries: []) == .wait, "nothing held: nothing to do")
        #expect(round(9_999) == .wait)
        #expect(round(10_000) == .renew, "a third of the lease after the last renewal")
        // A lease within two beats of lapsing (claimed since the last renewal) is renewed early, at most once a second.
        #expect(round(5_000, expiries: [60_000, 24_999]) == .renew)
        #expect(round(5_000, lastBeat: 4_500, expiries: [60_000, 24_999]) == .wait)
        #expect(round(5_000, expiries: [25_000]) == .wait)
        // Polled: when asked to verify, or without a change stream every pollEvery.
        #expect(round(1_000, verify: true) == .poll)
        #expect(round(4_999, streaming: false) == .wait)
        #expect(round(5_000, streaming: false) == .poll)
        #expect(round(50_000, lastBeat: 45_000, lastPoll: 48_000, expiries: [100_000], streaming: false) == .wait)
        #expect(round(5_000, lastPoll: 0, streaming: true) == .wait, "with the stream, cancels arrive on it")
        #expect(round(10_000, verify: true) == .renew, "a renewal reads the flags too")
    }

    func answer(_ held: [String: Bool], unread: Set<String> = [], unsure: Set<String> = []) -> LeaseAnswer {
        var a = LeaseAnswer()
        a.held = held
        a.heldUnread = unread
        a.unsure = unsure
        return a
    }

    @Test func theAnswerSaysWhichLeasesWereRenewedCancelledOrLost() {
        let held: Set = ["a", "b", "c"]
        let renewal = LeaseKeeper.verdict(held: held, answer: answer(["a": false, "c": true]), renewal: true)
        #expect(renewal.renewed == ["a", "c"])
        #expect(renewal.cancelled == ["c"])
        #expect(renewal.lost == ["b"])
        let poll = LeaseKeeper.verdict(held: held, answer: answer(["a": true, "b": false, "c": false]), renewal: false)
        #expect(poll.renewed.isEmpty, "a read renews nothing")
        #expect(poll.cancelled == ["a"])
        #expect(poll.lost.isEmpty)
        #expect(LeaseKeeper.verdict(held: held, answer: answer([:]), renewal: true).lost == held)
    }

    @Test func aLeaseTheAnswersDisagreeOnIsNeitherLostNorRenewed() {
        let held: Set = ["a", "b", "c"]
        let v = LeaseKeeper.verdict(held: held, answer: answer(["a": false], unread: ["b"], unsure: ["c"]), renewal: true)
        #expect(v.renewed == ["a", "b"], "held unread is still held")
        #expect(v.lost.isEmpty, "an unsure lease is not stopped")
        #expect(v.cancelled.isEmpty)
    }

    /// The read shows more leases held than the renewal matched: which ones
    /// the write extended is unknown, so no clock moves (each child's own
    /// clock fences it); when the write matched every lease, they all do.
    @Test func afterContradictingAnswersAClockIsRenewedOnlyIfTheWriteMatchedEveryLease() {
        let more = JobStore.checkLeaseAnswer(tokens: ["a", "b"], matched: 1, docs: [["lease": ["token": "a"]], ["lease": ["token": "b"]]],
                                             released: { _ in false })
        #expect(more.contradiction != nil)
        let v = LeaseKeeper.verdict(held: ["a", "b"], answer: more, renewal: true)
        #expect(v.renewed.isEmpty && v.lost.isEmpty, "\(v)")
        let lostRead = JobStore.checkLeaseAnswer(tokens: ["a", "b", "c"], matched: 3,
                                                 docs: [["lease": ["token": "a"]], ["lease": ["token": "b"]]], released: { _ in false })
        #expect(lostRead.contradiction != nil)
        #expect(LeaseKeeper.verdict(held: ["a", "b", "c"], answer: lostRead, renewal: true).renewed == ["a", "b"])
    }
}
