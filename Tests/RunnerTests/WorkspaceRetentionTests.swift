#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import RunnerCore
@testable import SupervisorKit
import Testing

/// KEEP_WORKSPACES holds on every path a job can end by, not only the happy one.
@Suite struct WorkspaceRetentionTests {
    /// A job child whose exec fails (its interpreter does not exist): the
    /// job fails after its workspace was made.
    func failingSpawn(_ keep: String) async throws -> (Harness, String) {
        let h = try Harness()
        try await h.makeRemote()
        let script = h.root + "/unstartable-child"
        try "#!/nonexistent/interpreter\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let id = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: ["AGENT_RUNNER_JOB_PATH": script, "JOB_MAX_ATTEMPTS": "1",
                                                "SANDBOX": "off", "JOB_NETWORK": "host", "KEEP_WORKSPACES": keep])
        #expect(run.status == 0, "\(run.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.prettyString)")
        return (h, id)
    }

    @Test func neverRemovesTheWorkspaceOfAJobWhoseChildCouldNotStart() async throws {
        let (h, id) = try await failingSpawn("never")
        defer { h.cleanup() }
        #expect(FileManager.default.fileExists(atPath: h.workdir), "the workspace root was made")
        #expect(!FileManager.default.fileExists(atPath: h.workspace(id)), "KEEP_WORKSPACES=never left the workspace")
    }

    @Test func failedKeepsTheWorkspaceOfAJobWhoseChildCouldNotStart() async throws {
        let (h, id) = try await failingSpawn("failed")
        defer { h.cleanup() }
        #expect(FileManager.default.fileExists(atPath: h.workspace(id)))
    }

    @Test func theRetentionTable() {
        let done = JobOutcome.done(JobMetadata()), failed = JobOutcome.failed(JobFailure(.timeout, "t"))
        let retry = JobOutcome.retry(JobFailure(.internal, "i"), notBefore: Date())
        #expect(!OutcomeWriter.keepsWorkspace(.never, outcome: failed))
        #expect(OutcomeWriter.keepsWorkspace(.always, outcome: done))
        #expect(!OutcomeWriter.keepsWorkspace(.failed, outcome: done))
        #expect(!OutcomeWriter.keepsWorkspace(.failed, outcome: .requeued))
        #expect(OutcomeWriter.keepsWorkspace(.failed, outcome: failed))
        #expect(OutcomeWriter.keepsWorkspace(.failed, outcome: retry))
        #expect(OutcomeWriter.keepsWorkspace(.failed, outcome: .cancelled("c")))
        #expect(OutcomeWriter.keepsWorkspace(.failed, outcome: nil), "a lost lease keeps it for whoever looks")
    }
}
