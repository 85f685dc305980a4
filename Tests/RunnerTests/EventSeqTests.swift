import Foundation
@testable import JobStore
import RunnerCore
@testable import SupervisorKit
import Testing

/// A job's event stream is numbered once across its attempts: an attempt
/// never reuses a `seq` its predecessor stored (the unique index would drop
/// the event silently), whichever way it ends.
@Suite(.serialized) struct EventSeqTests {
    let queue = QueueFixture()

    /// A stream whose start is not known (the last stored `seq` could not be
    /// read) numbers and keeps nothing, and its outcome records no `eventSeq`.
    @Test func aSkippedStreamNumbersNothing() {
        let job = ClaimedJob(document: ["_id": "j1", "eventSeq": 4, "attempts": 2], token: "t1")
        var q = JobEventQueue(max: 100)
        q.start(job, after: nil)
        _ = q.add(job, .stage(.generating))
        #expect(!q.hasDue(olderThan: .zero))
        let (events, last) = q.finish(job)
        #expect(events.isEmpty && last == nil)
        // Started: numbered on from where the earlier attempts stopped.
        q.start(job, after: 7)
        _ = q.add(job, .stage(.generating))
        let (more, next) = q.finish(job)
        #expect(more.map(\.seq) == [8] && next == 8)
        // Never started: nothing is numbered from the document's stale eventSeq.
        _ = q.add(job, .stage(.generating))
        #expect(q.finish(job).last == nil)
    }

    /// Attempt 2 of a job whose attempt 1 stored events and lapsed (no
    /// outcome, so no `eventSeq`) fails before its child runs (its project
    /// is gone): its `finished` event follows the stored ones.
    @Test func anAttemptThatFailsBeforeItsChildNumbersOnFromTheStoredEvents() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.store.insertJob(projectId: "no-such-project", spec: tinySpec)
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(id)], update: ["$set": [
                "status": "running", "stage": "generating", "attempts": 1,
                "lease": ["owner": "dead-host:1:x", "token": "gone", "expiresAt": .date(Date().addingTimeInterval(-5))]]])
        }
        let earlier: [JobEvent] = (1...3).map { n in
            var e = JobEvent.stage(.generating)
            e.seq = n
            e.attempt = 1
            return e
        }
        try await h.store.insertEvents([(jobId: .string(id), events: earlier)])
        let r = try await h.agentRunner(["run", "--exit-when-idle"], timeout: 90)
        #expect(r.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed" && job["error"]?["code"]?.stringValue == "invalid_spec", "\(job.jsonString)")
        let stored = try await h.store.events(jobId: id, after: 0, limit: 100)
        #expect(stored.map { $0["seq"]?.intValue } == [1, 2, 3, 4], "\(stored)")
        #expect(stored.last?["data"]?["stage"] == "finished" && stored.last?["attempt"]?.intValue == 2, "\(stored)")
        #expect(job["eventSeq"]?.intValue == 4)
    }
}
