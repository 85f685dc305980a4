import Foundation
import RunnerCore
import Testing

/// Issue 12, item 1: nothing a job starts outlives it, on every stop path.
/// The agent double-forks a detached grandchild (setsid); it must be gone
/// within 5 s of the job's outcome (or of the supervisor's death).
@Suite(.serialized) struct LifetimeTests {
    enum Path: String, CaseIterable, Sendable {
        case done, failed, timeout, cancel, sigtermDrain, secondSignal, supervisorKilled
    }

    @Test(arguments: Path.allCases) func detachedGrandchildDiesWithTheJob(_ path: Path) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let marker = "agent-runner-escapee-" + UUID().uuidString
        let mode = path == .done ? "done" : path == .failed ? "failed" : "hang"
        let agent = try Containment.install("escaping_agent.sh", in: h.root, prefix: "MODE=\(mode) MARKER=\(marker)")
        let id = try await h.seed(tinySpec)
        var env = ["CLINE_CMD": agent, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "1"]
        if path == .timeout { env["JOB_TIMEOUT_SECONDS"] = "3" }
        if path == .sigtermDrain { env["SHUTDOWN_GRACE_SECONDS"] = "1" }
        if path == .secondSignal { env["SHUTDOWN_GRACE_SECONDS"] = "120" }
        let p = try h.startSupervisor(env)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // The grandchild is up.
        #expect(await eventually(30) { !Containment.processes(with: marker).isEmpty }, "no escapee started")
        func status() async throws -> String? { try await h.job(id)["status"]?.stringValue }
        switch path {
        case .done, .failed, .timeout:
            let ended = try await eventually(30) {
                let s = try await status()
                return s != "running" && s != "pending"
            }
            #expect(ended)
        case .cancel:
            #expect(try await h.agentRunner(["cancel", id]).status == 0)
            #expect(try await eventually(10) { try await status() == "cancelled" })
        case .sigtermDrain, .secondSignal:
            kill(p.processIdentifier, SIGTERM)
            if path == .secondSignal {
                try await Task.sleep(for: .milliseconds(300))
                kill(p.processIdentifier, SIGTERM)
            }
            #expect(try await eventually(20) { try await status() == "pending" }, "requeued")
        case .supervisorKilled:
            kill(p.processIdentifier, SIGKILL)
            _ = await eventually(5) { !p.isRunning }
        }
        let expected: [Path: String] = [.done: "done", .failed: "failed", .timeout: "failed", .cancel: "cancelled",
                                        .sigtermDrain: "pending", .secondSignal: "pending", .supervisorKilled: "running"]
        let doc = try await h.job(id)
        #expect(doc["status"]?.stringValue == expected[path], "\(doc.jsonString)")
        if path == .done {
            // Killed when the agent exited, before anything it wrote was read.
            let logs = doc["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(logs.contains { $0.hasPrefix("cline: ran ") && $0.contains("left running") }, "\(logs)")
        }
        // Within 5 s of the outcome, nothing of the job is left.
        let gone = await eventually(5) { Containment.processes(with: marker).isEmpty }
        #expect(gone, "escapee still running: \(Containment.processes(with: marker))")
        if !gone { for pid in Containment.processes(with: marker) { kill(pid, SIGKILL) } }
    }

    /// JOB_MAX_PROCESSES: a fork bomb (bounded here) fails the job with
    /// `resource_limit` and leaves nothing behind.
    @Test func forkBombFailsWithResourceLimit() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let marker = "agent-runner-bomb-" + UUID().uuidString
        let agent = h.root + "/bomb"
        try """
        #!/usr/bin/env python3
        import os, sys, time
        refused = 0
        for _ in range(64):
            try:
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "\(marker)"])
            except OSError:
                refused += 1
        open("README.md", "w").write("# bomb\\n")
        open("refused.txt", "w").write(str(refused))
        """.write(toFile: agent, atomically: true, encoding: .utf8)
        chmod(agent, 0o755)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: [
            "CLINE_CMD": agent, "CLINE_ENABLED": "true", "GENERATORS": "cline,scaffold", "JOB_MAX_PROCESSES": "16"])
        #expect(r.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(job["error"]?["code"]?.stringValue == "resource_limit")
        #expect(job["error"]?["message"]?.stringValue?.contains("JOB_MAX_PROCESSES=16") == true, "\(job.jsonString)")
        #expect(await eventually(5) { Containment.processes(with: marker).isEmpty })
    }
}
