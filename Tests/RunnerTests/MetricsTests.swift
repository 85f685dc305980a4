import Foundation
import RunnerCore
import Testing
@testable import JobStore

/// `/metrics` and `/healthz` served on METRICS_ADDR by a real supervisor.
@Suite(.serialized) struct MetricsTests {
    let queue = QueueFixture()

    @Test func metricsCountJobsAndHealthFollowsTheDatabase() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let db = try await PrivateDatabase(dir: h.root + "/db")
        defer { db.stop() }
        let port = freePort()
        let env = ["MONGODB_URI": db.uri, "MONGO_DB_NAME": "metrics", "METRICS_ADDR": "127.0.0.1:\(port)",
                   "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0), "RUNNER_POLL_SECONDS": "0.2"]
        let p = try h.startSupervisor(env)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let base = "http://127.0.0.1:\(port)"
        try await queue.waitFor("the health endpoint") { (try? await httpRequest(base + "/healthz"))?.status == 200 }

        let store = JobStore(pool: try MongoPool(uri: db.uri, databaseName: "metrics"), logCap: 100)
        let project = try await store.insertProject(name: "M", repoURL: nil)
        let id = try await store.insertJob(projectId: project, spec: tinySpec)
        try await queue.waitFor("the job to finish") { try await store.job(id)?["status"]?.stringValue == "done" }
        try await Task.sleep(for: .milliseconds(300))
        let metrics = try await httpRequest(base + "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("agent_runner_jobs_claimed_total 1"))
        #expect(metrics.body.contains(#"agent_runner_jobs_finished_total{status="done",code=""} 1"#)
                || metrics.body.contains(#"agent_runner_jobs_finished_total{code="",status="done"} 1"#), "\(metrics.body)")
        #expect(metrics.body.contains("agent_runner_job_duration_seconds"))
        #expect(metrics.body.contains("agent_runner_claim_latency_seconds"))
        #expect(metrics.body.contains("agent_runner_jobs_running 0"))
        #expect(metrics.body.contains(#"agent_runner_child_exits_total{reason="exit_0"} 1"#))

        db.stop()
        try await queue.waitFor("/healthz to report the outage", timeout: 30) {
            (try? await httpRequest(base + "/healthz"))?.status == 503
        }
        #expect(try await httpRequest(base + "/healthz").body.contains("database unreachable"))
        try await db.start()
        try await queue.waitFor("/healthz to recover", timeout: 60) { (try? await httpRequest(base + "/healthz"))?.status == 200 }
        p.terminate()
        #expect(try await queue.waitExit(p) == 0)
    }

    /// Issue 13, item 10: a fresh daemon's first scrape has every series at 0.
    @Test func freshDaemonExposesEverySeriesAtZero() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let port = freePort()
        let p = try h.startSupervisor(["METRICS_ADDR": "127.0.0.1:\(port)", "RUNNER_CONCURRENCY": "3",
                                              "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0)])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let base = "http://127.0.0.1:\(port)"
        var metrics = (status: 0, body: "")
        try await queue.waitFor("the metrics endpoint") {
            metrics = (try? await httpRequest(base + "/metrics")) ?? (0, "")
            return metrics.status == 200
        }
        let lines = Set(metrics.body.split(separator: "\n").map(String.init))
        for series in ["agent_runner_jobs_claimed_total 0", "agent_runner_database_errors_total 0",
                       "agent_runner_jobs_running 0.0", "agent_runner_slots 3.0",
                       "agent_runner_job_duration_seconds_count 0", "agent_runner_claim_latency_seconds_count 0"] {
            #expect(lines.contains(series), "missing \(series) in:\n\(metrics.body)")
        }
        for status in ["done", "failed", "retry", "cancelled", "requeued"] {
            #expect(lines.contains(#"agent_runner_jobs_finished_total{status="\#(status)",code=""} 0"#)
                    || lines.contains(#"agent_runner_jobs_finished_total{code="",status="\#(status)"} 0"#),
                    "missing finished status \(status) in:\n\(metrics.body)")
        }
        #expect(lines.contains(#"agent_runner_child_exits_total{reason="exit_0"} 0"#), "\(metrics.body)")
        p.terminate()
        #expect(try await queue.waitExit(p) == 0)
    }
}
