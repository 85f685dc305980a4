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
        // Read until the job's end is counted (written after its outcome).
        var metrics = try await httpRequest(base + "/metrics")
        _ = try await eventually(60) {
            metrics = try await httpRequest(base + "/metrics")
            return metrics.body.contains("agent_runner_jobs_running 0")
        }
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
        // Which build this is: the release and commit `--version` prints, as an info metric.
        let build = #"agent_runner_build_info{version="\#(RunnerVersion.string)",commit="\#(RunnerVersion.commit)"}"#
        #expect(lines.contains { $0 == build + " 1" || $0 == build + " 1.0" }, "missing \(build) in:\n\(metrics.body)")
        p.terminate()
        #expect(try await queue.waitExit(p) == 0)
    }
}

/// The spend on `/metrics`: model calls, tokens and cost by route, provider
/// and model, budget stops and provider retries, from a real job whose
/// provider answers 429 once and whose budget stops it.
@Suite(.serialized) struct SpendMetricsTests {
    let queue = QueueFixture()

    @Test func modelCallsTokensCostBudgetStopsAndRetriesAreCounted() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let provider = try await FixtureServer("fake_provider.py", ["retry429", h.root + "/provider.jsonl"])
        defer { provider.stop() }
        let cline = try Containment.install("fake_cline.py", in: h.root, prefix: "MODE = \"v3-stubborn\"")
        let port = freePort()
        let p = try h.startSupervisor([
            "METRICS_ADDR": "127.0.0.1:\(port)", "CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline",
            "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_MODEL": "gpt-4.1",
            "CLINE_API_KEY": ContainmentTests.realKey, "JOB_BUDGET_REQUESTS": "2", "CHECKPOINT_ON": "none"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let id = try await h.seed(tinySpec)
        try await queue.waitFor("the job to end", timeout: 120) { try await h.job(id)["status"]?.stringValue == "failed" }
        // The job's outcome and its metrics are written apart: the metrics are
        // read until the budget's stop is counted (the last of them).
        var body = ""
        _ = try await eventually(60) {
            body = try await httpRequest("http://127.0.0.1:\(port)/metrics").body
            return body.split(separator: "\n").contains { $0 == "agent_runner_budget_stops_total 1" }
        }
        let dims = #"route="provider",provider="openai-compatible",model="gpt-4.1""#
        func has(_ line: String) -> Bool { body.split(separator: "\n").contains { $0 == line } }
        #expect(has(#"agent_runner_model_calls_total{\#(dims),status="200"} 2"#), "\(body)")
        #expect(has(#"agent_runner_model_tokens_total{\#(dims),kind="input"} 776"#), "\(body)")
        #expect(body.contains(#"agent_runner_model_cost_usd_total{\#(dims)} 0.005424"#), "\(body)")
        #expect(has("agent_runner_budget_stops_total 1"), "\(body)")
        #expect(has("agent_runner_provider_retries_total 1"), "\(body)")
        p.terminate()
        _ = try await queue.waitExit(p)
    }
}
