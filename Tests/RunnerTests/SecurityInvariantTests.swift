import Foundation
import ChildGeneration
import JobStore
import RunnerCore
import Sandbox
import Testing

/// Issue 13, item 7 (in part): security invariants checked, not assumed.
@Suite struct SecurityInvariantTests {
    static let limits = TreeLimits(maxFiles: 100, maxFileBytes: 1 << 20, maxTotalBytes: 8 << 20)

    /// An agent writes files itself: the scan applies TreeWriter's case rule.
    @Test func scannerRejectsPathsThatCollideInCase() throws {
        let repo = TestEnv.tempDir("case")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        try "r".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
        try "r".write(toFile: repo + "/readme.md", atomically: true, encoding: .utf8)
        try "f".write(toFile: repo + "/src", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: repo + "/SRC", withIntermediateDirectories: true)
        try "x".write(toFile: repo + "/SRC/main.py", atomically: true, encoding: .utf8)
        let error = #expect(throws: JobFailure.self) { try TreeScanner.scan(repo, limits: Self.limits) }
        #expect(error?.code == .unsafeOutput)
        #expect(error?.message.contains("duplicate path") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("src (both a file and a directory)") == true, "\(error?.message ?? "")")
        // The writer says the same of the same tree.
        let writer = TreeWriter(root: TestEnv.tempDir("w"), limits: Self.limits)
        let writerError = #expect(throws: JobFailure.self) {
            try writer.check([("README.md", [1]), ("readme.md", [1]), ("src", [1]), ("SRC/main.py", [1])])
        }
        #expect(writerError?.message == error?.message)
    }

    @Test func aCaseCleanTreePasses() throws {
        let repo = TestEnv.tempDir("clean")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        try "r".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: repo + "/src", withIntermediateDirectories: true)
        try "x".write(toFile: repo + "/src/Main.py", atomically: true, encoding: .utf8)
        try "x".write(toFile: repo + "/src/util.py", atomically: true, encoding: .utf8)
        #expect(try TreeScanner.scan(repo, limits: Self.limits).files == ["README.md", "src/Main.py", "src/util.py"])
    }

    /// The seccomp check reads every thread: in this (unfiltered) test process, all of them.
    @Test func unfilteredThreadsAreFound() {
        let unfiltered = SyscallFilter.threadsWithoutFilter()
        #expect(!unfiltered.isEmpty)
        #expect(unfiltered.contains(Int(getpid())) || SyscallFilter.currentMode() == 2)
    }

    /// A read-write path the sandbox cannot open fails the job at once instead
    /// of being skipped (here a file:// repository that does not exist).
    @Test func aMissingReadWritePathFailsTheJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec, repo: "file://" + h.root + "/missing.git")
        let r = try await h.agentRunner(["run", "--exit-when-idle"])
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(job["error"]?["retryable"]?.boolValue == false)
        #expect(job["error"]?["message"]?.stringValue?.contains("cannot grant read-write access to \(h.root)/missing.git") == true,
                "\(job["error"]?.jsonString ?? "")")
    }
}
