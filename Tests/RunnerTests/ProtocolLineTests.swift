#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import SupervisorKit
import Testing

/// A line on the child protocol that does not decode fails the job as
/// `internal` at once, naming the line (redacted, clipped): a stdout line of
/// the job child, read by the supervisor, and a line of the supervisor on
/// the child's stdin where the push token is due.
@Suite struct ProtocolLineTests {
    static let token = "ghp_" + "Malformed0123456789abcdefghijABCDEFGH"

    @Test func aMalformedChildLineFailsTheJobAtOnceNamingIt() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let child = h.root + "/garbling-child"
        try writeExecutable(child, """
        #!/bin/sh
        head -n 1 > /dev/null
        echo '{"type":"stage","stage":"generating"}'
        echo 'not an event: \(Self.token) \(String(repeating: "x", count: 400))'
        exec sleep 300
        """)
        let id = try await h.seed(tinySpec)
        // Without the check the child would run into the timeout: a different code.
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["AGENT_RUNNER_JOB_PATH": child, "SANDBOX": "off", "JOB_NETWORK": "host",
                                              "JOB_MAX_ATTEMPTS": "1", "JOB_TIMEOUT_SECONDS": "30"])
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.prettyString)")
        #expect(job["error"]?["code"]?.stringValue == "internal")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.hasPrefix("a line the job child wrote on stdout is not a protocol message: \"not an event: "), "\(message)")
        #expect(message.contains("line cut"), "clipped: \(message)")
        #expect(!job.jsonString.contains(Self.token), "the line is redacted")
    }

    @Test func aMalformedTokenLineFailsTheChildAtOnceNamingIt() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // A token goes only to a GIT_TOKEN_HOSTS host: the remote's, here.
        let env = h.environment(["GIT_TOKEN_HOSTS": "127.0.0.1:9"])
        let config = try RunnerConfiguration(environment: env)
        let workspace = h.workspace("malformed-token")
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        var settings = config.child
        settings.network = .host
        // An http remote: the child asks for the push token (and fails before any connection).
        let ticket = JobTicket(jobId: "malformed-token", attempt: 1, projectName: "P", repoURL: "http://127.0.0.1:9/r.git",
                               architectureSpec: tinySpec, workspace: workspace, settings: settings,
                               secrets: ChildSecrets(githubToken: nil))
        let line = Array("{\"githubToken\": \"\(Self.token)\"".utf8) + [0x0A]
        let r = try await JobChildRun.run(ticket, env: env, secretsLine: line)
        let failure = r.events.compactMap { e -> JobFailure? in if case .failed(let f) = e { return f }; return nil }.first
        #expect(failure?.code == .internal, "\(r.events) \(r.stderr) \(r.status)")
        #expect(failure?.message == "a line from the supervisor on stdin (\(line.count - 1) bytes) is not a protocol message",
                "never quoted, whatever shape its secrets have: \(failure?.message ?? "")")
        #expect(!r.stdout.contains(Self.token))
    }
}
