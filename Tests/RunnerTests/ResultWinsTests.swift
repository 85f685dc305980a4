import Foundation
import JobStore
import RunnerCore
import Testing

/// Issue 13, item 2: a child that reported a successful push and is then
/// cancelled, timed out or stopped by a shutdown is recorded `done` with its
/// metadata (the commit is on the remote).
@Suite(.serialized) struct ResultWinsTests {
    let queue = QueueFixture()

    /// A child that reports success at once, says so in `<root>/reported`, then hangs.
    func reportThenHang(_ h: Harness) throws -> String {
        let path = h.root + "/report-then-hang"
        try """
        #!/bin/sh
        head -n 1 > /dev/null
        echo '{"type":"stage","stage":"pushing"}'
        echo '{"type":"result","ok":true,"metadata":{"generator":"fake","commitSha":"0123abcd","branch":"main"}}'
        echo '{"type":"log","line":"reported"}'
        sleep 1
        touch \(h.root)/reported
        exec sleep 300
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func expectDone(_ h: Harness, _ id: String) async throws {
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.prettyString)")
        #expect(job["metadata"]?["commitSha"]?.stringValue == "0123abcd")
        #expect(job["metadata"]?["generator"]?.stringValue == "fake")
        #expect(job["error"] == nil)
    }

    @Test func timeoutAfterASuccessfulResultRecordsDone() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["AGENT_RUNNER_JOB_PATH": try reportThenHang(h), "JOB_TIMEOUT_SECONDS": "2"])
        #expect(r.status == 0, "\(r.stderr)")
        try await expectDone(h, id)
    }

    @Test func cancelAfterASuccessfulResultRecordsDone() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try reportThenHang(h)])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await queue.waitFor("the result") { FileManager.default.fileExists(atPath: h.root + "/reported") }
        #expect(try await h.agentRunner(["cancel", id]).status == 0)
        try await queue.waitFor("the job to end", timeout: 20) {
            try await h.job(id)["status"]?.stringValue != "running"
        }
        try await expectDone(h, id)
        p.terminate()
        #expect(try await queue.waitExit(p) == 0)
    }

    @Test func forcedShutdownAfterASuccessfulResultRecordsDone() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try reportThenHang(h), "SHUTDOWN_GRACE_SECONDS": "1"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await queue.waitFor("the result") { FileManager.default.fileExists(atPath: h.root + "/reported") }
        p.terminate()
        #expect(try await queue.waitExit(p, timeout: 20) == 0)
        try await expectDone(h, id)
    }
}
