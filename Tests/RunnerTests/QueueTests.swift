import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Queue reliability against the real server: cancel, timeout, graceful
/// stop, one job per project, many supervisors.
@Suite(.serialized) struct QueueTests: QueueFixtures {
    /// The cancel arrives on the change stream: renewals (LEASE_SECONDS/3)
    /// and the fallback poll (RUNNER_POLL_SECONDS) are an hour apart, so
    /// nothing else could deliver it while the test waits.
    @Test func cancellingARunningJobStopsItThroughTheChangeStream() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let log = h.root + "/supervisor.log"
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try fakeChild(h, seconds: 300),
                                       "LEASE_SECONDS": "3600", "RUNNER_POLL_SECONDS": "3600"], log: log)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await waitFor("the job to start") { runs(h).contains { $0.kind == "start" } }
        // A change made before the stream opened would never reach it.
        try await waitFor("the change stream to open") {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("change stream open")
        }
        // The stand-in child, found by its run log in its argv.
        let child = Containment.processes(with: h.root + "/runs.log")
        #expect(!child.isEmpty, "the job's child is running")
        #expect(try await h.agentRunner(["cancel", id]).status == 0)
        try await waitFor("cancelled") { try await h.job(id)["status"]?.stringValue == "cancelled" }
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "cancelled", "\(job.jsonString)")
        #expect(job["lease"] == nil, "\(job.jsonString)")
        // The outcome is written after the child's exit: it is gone, and it never finished its run.
        #expect(Containment.processes(with: h.root + "/runs.log").isEmpty, "the child must have been stopped")
        #expect(!runs(h).contains { $0.kind == "end" }, "the child must have been stopped")
        p.terminate()
        #expect(try await waitExit(p) == 0)
    }

    @Test func pendingJobCancelledInTheDatabaseNeverRuns() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        try await h.store.pool.run("jobs") { coll in
            try CollectionTestOps.setField(coll, id: id, field: "cancelRequested", value: true)
        }
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["AGENT_RUNNER_JOB_PATH": try fakeChild(h, seconds: 0)]).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "cancelled")
        #expect(job["attempts"] == nil || job["attempts"]?.intValue == 0)
        #expect(runs(h).isEmpty)
    }

    @Test func timeoutStopsTheGroupAndFailsTheJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["AGENT_RUNNER_JOB_PATH": try fakeChild(h, seconds: 300), "JOB_TIMEOUT_SECONDS": "2"])
        #expect(r.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "timeout")
        // The 300 s child was stopped, not waited for.
        #expect(runs(h).contains { $0.kind == "start" } && !runs(h).contains { $0.kind == "end" })
        #expect(Containment.processes(with: h.root + "/runs.log").isEmpty)
    }

    @Test func sigtermDrainsThenRequeuesWithoutCountingTheAttempt() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try fakeChild(h, seconds: 300), "SHUTDOWN_GRACE_SECONDS": "1"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await waitFor("the job to start") { runs(h).contains { $0.kind == "start" } }
        p.terminate()
        #expect(try await waitExit(p, timeout: 20) == 0, "a graceful stop exits 0")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "pending", "\(job.jsonString)")
        #expect(job["attempts"]?.intValue == 0, "a requeued attempt is not counted")
        #expect(job["lease"] == nil)
    }

    @Test func secondSignalSkipsTheGraceAndStillRequeues() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try fakeChild(h, seconds: 300), "SHUTDOWN_GRACE_SECONDS": "120"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await waitFor("the job to start") { runs(h).contains { $0.kind == "start" } }
        p.terminate()
        try await Task.sleep(for: .milliseconds(500))
        #expect(p.isRunning, "the first signal waits for the running job")
        p.terminate()
        #expect(try await waitExit(p, timeout: 15) == 0, "the second signal must not wait out the 120 s grace")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "pending", "\(job.jsonString)")
    }

    @Test func jobsOfOneProjectNeverOverlap() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let a = try await h.store.insertProject(name: "ProjA", repoURL: nil)
        let b = try await h.store.insertProject(name: "ProjB", repoURL: nil)
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await h.store.insertJob(projectId: a, spec: tinySpec)) }
        ids.append(try await h.store.insertJob(projectId: b, spec: tinySpec))
        let child = try fakeChild(h, seconds: 1)
        // Two supervisors with spare slots race for the same project's jobs.
        let s1 = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": child, "RUNNER_CONCURRENCY": "3"], args: ["--exit-when-idle"])
        let s2 = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": child, "RUNNER_CONCURRENCY": "3"], args: ["--exit-when-idle"])
        defer { for p in [s1, s2] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await waitFor("all jobs done", timeout: 90) {
            var all = true
            for id in ids where try await h.job(id)["status"]?.stringValue != "done" { all = false }
            return all
        }
        let log = runs(h).filter { $0.project == "ProjA" }
        var intervals: [(Double, Double)] = []
        for start in log where start.kind == "start" {
            let end = log.first { $0.kind == "end" && $0.job == start.job }?.time ?? .infinity
            intervals.append((start.time, end))
        }
        #expect(intervals.count == 3)
        intervals.sort { $0.0 < $1.0 }
        for (x, y) in zip(intervals, intervals.dropFirst()) {
            #expect(x.1 <= y.0, "project jobs overlapped: \(x) and \(y)")
        }
    }

    @Test func twoSupervisorsAndManyJobsRunEachExactlyOnce() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        var ids: [String] = []
        for i in 0..<100 {
            let p = try await h.store.insertProject(name: "P\(i)", repoURL: nil)
            ids.append(try await h.store.insertJob(projectId: p, spec: tinySpec))
        }
        let child = try fakeChild(h, seconds: 0)
        let env = ["AGENT_RUNNER_JOB_PATH": child, "RUNNER_CONCURRENCY": "2"]
        let s1 = try h.startSupervisor(env, args: ["--exit-when-idle"])
        let s2 = try h.startSupervisor(env, args: ["--exit-when-idle"])
        defer { for p in [s1, s2] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        #expect(try await waitExit(s1, timeout: 240) == 0)
        #expect(try await waitExit(s2, timeout: 240) == 0)
        let starts = runs(h).filter { $0.kind == "start" }.map(\.job)
        #expect(starts.count == 100, "\(starts.count) runs for 100 jobs")
        #expect(Set(starts).count == 100, "a job ran twice")
        for id in ids { #expect(try await h.job(id)["status"]?.stringValue == "done") }
    }
}
