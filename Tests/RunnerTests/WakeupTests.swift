import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Pickup without polling: the change stream wakes the claim loop; deferred
/// jobs are claimed when due.
@Suite(.serialized) struct WakeupTests {
    let queue = QueueFixture()

    @Test func newJobsAreClaimedAtOnceAndDeferredJobsWhenDue() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // A poll interval far longer than the test: only the stream and the due timer can explain pickups.
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0),
                                              "RUNNER_POLL_SECONDS": "600"], log: h.root + "/supervisor.log")
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let log = h.root + "/supervisor.log"
        try await queue.waitFor("the change stream", timeout: 60) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("change stream open")
        }
        var latencies: [Double] = []
        for _ in 0..<5 {
            let id = try await h.seed(tinySpec)
            let inserted = Date()
            try await queue.waitFor("the job to be claimed", timeout: 30) {
                try await h.job(id)["startedAt"]?.dateValue != nil
            }
            latencies.append(try await h.job(id)["startedAt"]?.dateValue?.timeIntervalSince(inserted) ?? .infinity)
        }
        // Far below the 600 s poll interval: the change stream woke the loop (not a latency bound).
        #expect(latencies.allSatisfy { $0 < 30 }, "claim latencies \(latencies)")

        let project = try await h.store.insertProject(name: "Later", repoURL: nil)
        let due = Date().addingTimeInterval(2)
        let id = "deferred-job"
        try await h.store.pool.run("jobs") { coll in
            try CollectionOps.insert(coll, ["_id": .string(id), "projectId": .string(project), "architecture_spec": tinySpec,
                                            "status": "pending", "createdAt": .date(Date()), "notBefore": .date(due)])
        }
        // The insert wakes the loop while the job is not yet due; the due time must wake it again.
        try await queue.waitFor("the deferred job", timeout: 30) { try await h.job(id)["startedAt"]?.dateValue != nil }
        let started = try await h.job(id)["startedAt"]?.dateValue ?? .distantFuture
        if started == .distantFuture {
            Issue.record("the supervisor's log: \((try? String(contentsOfFile: h.root + "/supervisor.log", encoding: .utf8)) ?? "-")")
        }
        #expect(started >= due.addingTimeInterval(-0.05))
        // Far below the 600 s poll interval: the due time woke the loop. (Not a
        // latency bound: a loaded machine may take a few seconds.)
        #expect(started.timeIntervalSince(due) < 30, "claimed \(started.timeIntervalSince(due)) s after due")
        p.terminate()
        #expect(try await queue.waitExit(p) == 0)
    }
}
