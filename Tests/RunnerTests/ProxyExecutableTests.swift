#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import Testing

/// The egress proxy holds the provider keys, so it is always the
/// agent-runner-job installed beside agent-runner: never the job child that
/// AGENT_RUNNER_JOB_PATH names. Without that sibling, what needs the proxy
/// fails saying so.
@Suite(.serialized) struct ProxyExecutableTests {
    @Test func withoutASiblingTheProxyDoesNotStartFromAgentRunnerJobPath() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // agent-runner alone in a folder (a hard link: /proc/self/exe names the link's path).
        let lonely = h.root + "/lonely"
        try FileManager.default.createDirectory(atPath: lonely, withIntermediateDirectories: true)
        try #require(link(TestEnv.binDir + "/agent-runner", lonely + "/agent-runner") == 0, "hard link: \(errno)")
        let log = h.root + "/provider.jsonl"
        let provider = try await FixtureServer("fake_provider.py", ["ok", log])
        defer { provider.stop() }
        let r = try await runProcess(lonely + "/agent-runner", ["doctor", "--online"], env: h.environment([
            "GENERATORS": "cline,scaffold", "CLINE_ENABLED": "true", "CLINE_CMD": "/bin/true",
            "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_API_KEY": ContainmentTests.realKey,
        ]), cwd: h.root)
        let line = r.stdout.split(separator: "\n").first { $0.contains("cline provider") } ?? ""
        #expect(line.hasPrefix("fail"), "\(r.stdout)")
        #expect(line.contains(lonely + "/agent-runner-job") && line.contains("missing or not executable"), "\(line)")
        #expect(!FileManager.default.fileExists(atPath: log), "no proxy, so no provider request")
        #expect(!r.stdout.contains(ContainmentTests.realKey) && !r.stderr.contains(ContainmentTests.realKey))
    }
}
