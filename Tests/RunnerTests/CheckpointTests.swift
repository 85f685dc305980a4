#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import JobStore
import RunnerCore
@testable import SupervisorKit
import Testing

/// A job stopped by its budget, its timeout or a cancel loses nothing: once
/// every agent process is gone, its job child commits the partial tree and
/// pushes it to the job's work-in-progress branch, never the project's;
/// `metadata.checkpoint` and the error message say where it is, and a retried
/// job with RESUME_FROM_CHECKPOINT=true starts from it. Real sandboxed
/// children, a fake Cline, the fake provider on loopback, a bare git remote.
@Suite(.serialized) struct CheckpointTests {
    /// The project's branch before the job: one commit the job must leave alone.
    func seedProjectBranch(_ h: Harness) async throws -> String {
        try await h.makeRemote()
        let work = h.root + "/seed"
        _ = try await Git.run(["init", "-q", "-b", "main", work])
        try "the project's own\n".write(toFile: work + "/ORIGINAL.md", atomically: true, encoding: .utf8)
        _ = try await Git.run(["-C", work, "add", "."])
        _ = try await Git.run(["-C", work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed"])
        _ = try await Git.run(["-C", work, "push", "-q", h.remote, "main"])
        return try await Git.run(["-C", h.remote, "rev-parse", "main"])
    }

    /// The files of `ref` in the remote.
    func files(_ h: Harness, _ ref: String) async throws -> [String] {
        try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", ref]).split(separator: "\n").map(String.init)
    }

    /// What every checkpoint test checks: the job's `metadata.checkpoint`
    /// names the WIP branch and its commit, which holds the partial tree; the
    /// message says where; the project's branch is where it was.
    func expectCheckpoint(_ h: Harness, _ id: String, _ job: JSONValue, reason: String, message: String?,
                          projectTip: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let branch = "agent-runner/wip/\(id)"
        let checkpoint = try #require(job["metadata"]?["checkpoint"], "\(job.jsonString)", sourceLocation: sourceLocation)
        #expect(checkpoint["branch"]?.stringValue == branch && checkpoint["reason"]?.stringValue == reason,
                "\(checkpoint)", sourceLocation: sourceLocation)
        let sha = try #require(checkpoint["commitSha"]?.stringValue, sourceLocation: sourceLocation)
        #expect(try await Git.run(["-C", h.remote, "rev-parse", branch]) == sha, sourceLocation: sourceLocation)
        #expect(try await files(h, branch).sorted() == ["README.md", "api/server.js", "partial.txt"].filter {
            reason != "budget" || $0 != "partial.txt"
        }, sourceLocation: sourceLocation)
        let log = try await Git.run(["-C", h.remote, "log", "-1", "--format=%B", branch])
        #expect(log.contains("stopped (\(reason))") && log.contains("Architex-Checkpoint: \(id)"), "\(log)",
                sourceLocation: sourceLocation)
        #expect(message?.contains("the partial work is on branch \(branch) at \(sha)") == true, "\(message ?? "-")",
                sourceLocation: sourceLocation)
        #expect(try await Git.run(["-C", h.remote, "rev-parse", "main"]) == projectTip, "the project's branch is untouched",
                sourceLocation: sourceLocation)
        #expect(try await files(h, "main") == ["ORIGINAL.md"], sourceLocation: sourceLocation)
        // The job's event stream has it as a publish step.
        let events = try await h.store.events(jobId: id, after: 0, kinds: ["publish"], limit: 100)
        #expect(events.contains { $0["data"]?["step"] == "checkpoint" && $0["data"]?["commit"]?.stringValue == sha
            && $0["data"]?["branch"]?.stringValue == branch && $0["data"]?["detail"]?.stringValue == reason },
                "\(events)", sourceLocation: sourceLocation)
    }

    func env(_ h: Harness, provider: FixtureServer, cline: String, _ extra: [String: String]) -> [String: String] {
        ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "3",
         "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_MODEL": "gpt-4.1",
         "CLINE_API_KEY": ContainmentTests.realKey].merging(extra) { $1 }
    }

    /// A budget crossed stops the next call; the job ends `budget_exceeded`
    /// and its partial tree is on its WIP branch.
    @Test func aJobOverItsBudgetLeavesItsPartialTreeOnItsBranch() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let tip = try await seedProjectBranch(h)
        let requests = h.root + "/provider.jsonl"
        let provider = try await FixtureServer("fake_provider.py", ["ok", requests])
        defer { provider.stop() }
        let cline = try Containment.install("fake_cline.py", in: h.root, prefix: "MODE = \"v3-stubborn\"")
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: env(h, provider: provider, cline: cline, ["JOB_BUDGET_REQUESTS": "2",
                                                                                        "JOB_TIMEOUT_SECONDS": "120"]))
        #expect(r.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed" && job["error"]?["code"]?.stringValue == "budget_exceeded",
                "\(job.jsonString)")
        #expect(try FixtureServer.jsonLines(requests).count == 2, "the third call never reached the provider")
        let message = job["error"]?["message"]?.stringValue
        #expect(message?.hasPrefix("budget exceeded: JOB_BUDGET_REQUESTS=2 requests spent") == true, "\(message ?? "-")")
        try await expectCheckpoint(h, id, job, reason: "budget", message: message, projectTip: tip)
    }

    /// A running job an operator cancels: its partial tree is on its WIP branch.
    @Test func aCancelledJobsPartialTreeIsOnItsBranch() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let tip = try await seedProjectBranch(h)
        let provider = try await FixtureServer("fake_provider.py", ["ok", h.root + "/provider.jsonl"])
        defer { provider.stop() }
        let cline = try Containment.install("fake_cline.py", in: h.root, prefix: "MODE = \"v3-hang\"")
        let id = try await h.seed(tinySpec)
        async let run = h.agentRunner(["run", "--exit-when-idle"],
                                      env: env(h, provider: provider, cline: cline, [:]), timeout: 200)
        let written = h.workspace(id) + "/repo/partial.txt"
        let appeared = try await eventually(120) { FileManager.default.fileExists(atPath: written) }
        #expect(appeared, "the agent wrote its partial tree")
        #expect(try await h.store.requestCancel(id))
        let r = try await run
        #expect(r.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "cancelled", "\(job.jsonString)")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        try await expectCheckpoint(h, id, job, reason: "cancel", message: logs.last, projectTip: tip)
    }

    /// A job that times out keeps its partial tree; retried with
    /// RESUME_FROM_CHECKPOINT=true, its next attempt starts from that tree.
    @Test func aTimedOutJobIsCheckpointedAndItsRetryResumesFromIt() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let tip = try await seedProjectBranch(h)
        let provider = try await FixtureServer("fake_provider.py", ["ok", h.root + "/provider.jsonl"])
        defer { provider.stop() }
        let cline = try Containment.install("fake_cline.py", in: h.root, prefix: "MODE = \"v3-resume\"")
        let id = try await h.seed(tinySpec)
        let settings = env(h, provider: provider, cline: cline, ["JOB_TIMEOUT_SECONDS": "45", "RESUME_FROM_CHECKPOINT": "true"])
        let first = try await h.agentRunner(["run", "--exit-when-idle"], env: settings, timeout: 200)
        #expect(first.status == 0)
        let stopped = try await h.job(id)
        #expect(stopped["status"]?.stringValue == "failed" && stopped["error"]?["code"]?.stringValue == "timeout",
                "\(stopped.jsonString)")
        try await expectCheckpoint(h, id, stopped, reason: "timeout", message: stopped["error"]?["message"]?.stringValue,
                                   projectTip: tip)
        // The operator retries it: the next attempt finds the checkpoint's tree and finishes.
        #expect(try await h.store.retry(id))
        let second = try await h.agentRunner(["run", "--exit-when-idle"], env: settings, timeout: 200)
        #expect(second.status == 0)
        let done = try await h.job(id)
        #expect(done["status"]?.stringValue == "done", "\(done.jsonString)")
        let logs = done["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.hasPrefix("resumed from the checkpoint on agent-runner/wip/\(id)") }, "\(logs)")
        let pushed = try await files(h, "main")
        #expect(pushed.contains("resumed.txt") && pushed.contains("partial.txt"), "\(pushed)")
        #expect(try await Git.run(["-C", h.remote, "show", "main:resumed.txt"]) == "# Built by the fake Cline",
                "the agent found the checkpoint's README.md")
    }
}
