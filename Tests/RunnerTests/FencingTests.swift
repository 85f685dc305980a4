#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// The queue's safety: a child whose lease is gone never pushes. A stop that
/// began a checkpoint (cancel, timeout) does not shield the child from a lease
/// lost meanwhile: it is killed at once and never handed the push token. Real
/// supervisor, real database, a stand-in child whose checkpoint is slow.
@Suite(.serialized) struct FencingTests {
    let queue = QueueFixture()

    /// The stand-in child (`checkpointing_child.py`) taking `seconds` to checkpoint.
    func checkpointingChild(_ h: Harness, seconds: Double) throws -> String {
        let path = h.root + "/checkpointing-child"
        try writeExecutable(path, "#!/bin/sh\nexec /usr/bin/python3 \(TestEnv.fixtures)/checkpointing_child.py "
            + "\(seconds) \(h.root)/runs.log\n")
        return path
    }

    /// What the stand-in recorded, in order.
    func steps(_ h: Harness) -> [String] {
        let text = (try? String(contentsOfFile: h.root + "/runs.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    @Test(arguments: ["cancel", "timeout"])
    func aChildCheckpointingWhenItsLeaseIsLostIsKilledAndNeverGetsTheToken(_ stop: String) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let child = try checkpointingChild(h, seconds: 20)
        let id = try await h.seed(tinySpec)
        let log = h.root + "/supervisor.log"
        var env = ["AGENT_RUNNER_JOB_PATH": child, "LEASE_SECONDS": "6", "CHECKPOINT_GRACE_SECONDS": "120",
                   "CHECKPOINT_ON": "timeout,cancel", "JOB_TIMEOUT_SECONDS": "600"]
        if stop == "timeout" { env["JOB_TIMEOUT_SECONDS"] = "8" }
        let p = try h.startSupervisor(env, args: ["--exit-when-idle"], log: log)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await queue.waitFor("the child to start", timeout: 90) { steps(h).contains("start") }
        if stop == "cancel" { #expect(try await h.store.requestCancel(id)) }
        try await queue.waitFor("the child to begin its checkpoint", timeout: 90) { steps(h).contains("stopping") }
        // Another runner takes the job over while the checkpoint runs.
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(id)],
                                     update: ["$set": ["lease.token": "someone-else", "lease.owner": "other",
                                                       "lease.expiresAt": .date(Date().addingTimeInterval(600))]])
        }
        // The child is killed: the supervisor writes nothing for the job (it is
        // the other runner's), finds nothing to claim, and exits.
        #expect(try await queue.waitExit(p, timeout: 90) == 0)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(steps(h) == ["start", "stopping"], "never asked for nor got the push token: \(steps(h))")
        #expect(text.contains("child exited") && text.contains("SIGKILL"), "\(text.suffix(3000))")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "running" && job["lease"]?["token"]?.stringValue == "someone-else",
                "the other runner's job is left alone: \(job.jsonString)")
        #expect(job["metadata"]?["checkpoint"] == nil)
    }

    /// The lease is held from the claim, not only once the child runs: a
    /// launch slower than LEASE_SECONDS (the ticket, the workspace, the
    /// proxy; stretched here by the debug builds' launch delay) keeps it, and
    /// the job ends `done` on its first attempt instead of lapsing.
    @Test func aSlowLaunchKeepsTheLeaseFromTheClaim() async throws {
        guard TestEnv.debugBuild else { return }
        let h = try Harness()
        defer { h.cleanup() }
        let child = try queue.fakeChild(h, seconds: 0.5)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["AGENT_RUNNER_JOB_PATH": child, "LEASE_SECONDS": "3", "JOB_MAX_ATTEMPTS": "1",
                                              "AGENT_RUNNER_TEST_LAUNCH_DELAY_MS": "8000"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(job["attempts"]?.intValue == 1 && (job["errors"]?.arrayValue ?? []).isEmpty, "\(job.jsonString)")
        #expect(queue.runs(h).map(\.kind) == ["start", "end"])
    }

    /// A lease lost before the child is spawned (another runner took the job
    /// during a slow launch): no child runs and nothing is written.
    @Test func aLeaseLostBeforeTheSpawnStartsNoChild() async throws {
        guard TestEnv.debugBuild else { return }
        let h = try Harness()
        defer { h.cleanup() }
        let child = try queue.fakeChild(h, seconds: 0.5)
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": child, "LEASE_SECONDS": "6",
                                       "AGENT_RUNNER_TEST_LAUNCH_DELAY_MS": "8000"], args: ["--exit-when-idle"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await queue.waitFor("the claim", timeout: 60) { try await h.job(id)["status"]?.stringValue == "running" }
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(id)],
                                     update: ["$set": ["lease.token": "someone-else", "lease.owner": "other",
                                                       "lease.expiresAt": .date(Date().addingTimeInterval(600))]])
        }
        #expect(try await queue.waitExit(p, timeout: 90) == 0)
        #expect(queue.runs(h).isEmpty, "no child ran: \(queue.runs(h))")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "running" && job["lease"]?["token"]?.stringValue == "someone-else",
                "\(job.jsonString)")
    }
}
