import Foundation
import RunnerCore
import Testing

/// Git failures are told apart by what is known for certain (libgit2's code,
/// the credential callback's state, the job's egress proxy's answer to the
/// tunnel), never by the text of the message: the egress proxy's 403 for a
/// refused CONNECT is not "authentication to the remote failed".
@Suite(.serialized) struct GitFailureClassTests {
    static let token = "ghp_" + "T0kenForTheGitFailureClassTests0123"

    /// Runs every queued job once with the token pinned to `hosts`, and no egress rule beyond the remote's own.
    func run(_ h: Harness, tokenHosts: String) async throws {
        let r = try await h.agentRunner(["run", "--exit-when-idle", "--concurrency", "1"],
                                        env: ["GITHUB_TOKEN": Self.token, "JOB_MAX_ATTEMPTS": "1",
                                              "GIT_TOKEN_HOSTS": tokenHosts])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @Test(arguments: ["https", "http"])
    func aConnectRefusedByTheEgressProxyIsNotAnAuthenticationFailure(scheme: String) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // Nothing listens there: the proxy's policy refuses the loopback address
        // (the remote's derived rule allows names only) before any connect.
        let port = freePort()
        let id = try await h.seed(tinySpec, repo: "\(scheme)://127.0.0.1:\(port)/owner/repo.git")
        try await run(h, tokenHosts: "127.0.0.1:\(port)")
        let job = try await h.job(id)
        let error = job["error"]
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(error?["code"]?.stringValue == "push_failed", "\(error?.jsonString ?? "")")
        #expect(error?["retryable"]?.boolValue == false, "a refusal by the proxy's policy is not worth another attempt")
        let message = error?["message"]?.stringValue ?? ""
        #expect(message.contains("egress proxy refused the connection to 127.0.0.1:\(port) (HTTP 403"), "\(message)")
        #expect(!message.contains("authentication"), "\(message)")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.contains("egress denied: 127.0.0.1:\(port)") }, "\(logs)")
    }
}
