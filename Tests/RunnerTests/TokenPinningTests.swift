#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import Testing
@testable import JobStore

/// Push tokens are pinned to their host (GIT_TOKEN_HOSTS): a remote a web
/// user names on any other host never sees the operator's or a user's token.
/// The loopback git server here accepts exactly the operator's token, so a
/// token that reached it would show as `auth: ok` and a pushed branch.
@Suite(.serialized) struct TokenPinningTests {
    static let operatorToken = "ghp_" + "TheOperatorsGlobalToken0123456789abcd"

    struct World {
        let h: Harness
        let git: FixtureServer
        let gitLog: String
        var url: String { "http://127.0.0.1:\(git.port)/repo.git" }
        var bare: String { h.root + "/srv/repo.git" }
        func stop() { git.stop(); h.cleanup() }
        func authorized() throws -> [JSONValue] { try FixtureServer.jsonLines(gitLog).filter { $0["auth"] == "ok" } }
    }

    func world() async throws -> World {
        let h = try Harness()
        try FileManager.default.createDirectory(atPath: h.root + "/srv", withIntermediateDirectories: true)
        try await Git.initBare(h.root + "/srv/repo.git")
        let log = h.root + "/git-requests.jsonl"
        let git = try await FixtureServer("git_http_server.py", [h.root + "/srv", Self.operatorToken, log])
        return World(h: h, git: git, gitLog: log)
    }

    func run(_ w: World, _ env: [String: String]) async throws {
        let r = try await w.h.agentRunner(["run", "--exit-when-idle"], env: [
            "GITHUB_TOKEN": Self.operatorToken, "JOB_MAX_ATTEMPTS": "1", "JOB_EGRESS_ALLOW": "127.0.0.1:\(w.git.port)",
        ].merging(env) { $1 })
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains(Self.operatorToken))
    }

    /// The finding: a loopback server answering 401 with a Basic challenge
    /// received the operator's GITHUB_TOKEN. Now the child never asks for a
    /// token for a host outside GIT_TOKEN_HOSTS (default github.com): the job
    /// is done with its push skipped, saying why.
    @Test func aServerOffTheTokenHostsNeverSeesTheToken() async throws {
        let w = try await world()
        defer { w.stop() }
        let id = try await w.h.seed(tinySpec, repo: w.url)
        try await run(w, [:])
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(job["metadata"]?["pushSkipped"]?.boolValue == true)
        let reason = job["metadata"]?["pushSkippedReason"]?.stringValue ?? ""
        #expect(reason.contains("127.0.0.1:\(w.git.port) is not in GIT_TOKEN_HOSTS (github.com)"), "\(reason)")
        #expect(job["logs"]?.arrayValue?.contains { $0.stringValue == "push skipped: " + reason } == true)
        #expect(try w.authorized().isEmpty, "the token never reached the server")
        #expect(try FixtureServer.jsonLines(w.gitLog).isEmpty, "nothing was even asked of it")
        #expect((try? await Git.run(["-C", w.bare, "rev-parse", "main"])) == nil, "nothing was pushed")
        // Listed, the same server gets it and the push goes through.
        let again = try await w.h.seed(tinySpec, repo: w.url)
        try await run(w, ["GIT_TOKEN_HOSTS": "github.com,127.0.0.1:\(w.git.port)"])
        #expect(try await w.h.job(again)["status"]?.stringValue == "done")
        #expect(try !w.authorized().isEmpty)
        #expect(try await Git.run(["-C", w.bare, "rev-parse", "main"]).count == 40)
    }

    /// The supervisor checks too: a job child that asks for the token for a
    /// remote off the token hosts gets none, and the log says why.
    @Test(arguments: ["env", "user"]) func theSupervisorWithholdsTheTokenFromAnUnlistedHost(_ source: String) async throws {
        let w = try await world()
        defer { w.stop() }
        try await w.h.store.pool.run("users") {
            try CollectionOps.insert($0, ["_id": "u1", "github_access_token": .string(Self.operatorToken)])
        }
        let projectId = try await w.h.store.insertProject(name: "Shop", repoURL: w.url)
        let id = try await w.h.store.insertJob(projectId: projectId, spec: tinySpec)
        try await w.h.store.pool.run("jobs") {
            try CollectionTestOps.setField($0, id: id, field: "userId", value: "u1")
        }
        let child = w.h.root + "/asking-child"
        try """
        #!/usr/bin/python3
        import json, sys
        sys.stdin.readline()
        print(json.dumps({"type": "push_token_request"}), flush=True)
        open("\(w.h.root)/token-line", "w").write(sys.stdin.readline())
        print(json.dumps({"type": "result", "ok": True, "metadata": {"generator": "fake"}}), flush=True)
        """.write(toFile: child, atomically: true, encoding: .utf8)
        chmod(child, 0o755)
        try await run(w, ["GIT_TOKEN_SOURCE": source, "AGENT_RUNNER_JOB_PATH": child, "SANDBOX": "off", "JOB_NETWORK": "host"])
        let line = try JSONValue.parse((try? String(contentsOfFile: w.h.root + "/token-line", encoding: .utf8)) ?? "{}")
        #expect(line["githubToken"]?.stringValue == nil, "\(line.jsonString)")
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(job["logs"]?.arrayValue?.contains {
            $0.stringValue == "push token withheld: the remote's host 127.0.0.1:\(w.git.port) is not in GIT_TOKEN_HOSTS "
                + "(github.com): no push token is sent there"
        } == true, "\(job["logs"]?.jsonString ?? "")")
    }

    /// A listed server that redirects to another host: libgit2 would answer
    /// the new host's 401 with the token (its credential callback is told the
    /// first URL). Off-site redirects are refused, so the token stays home.
    @Test func aRedirectToAnotherHostNeverGetsTheToken() async throws {
        let w = try await world()
        defer { w.stop() }
        let redirectLog = w.h.root + "/redirects.jsonl"
        let redirect = try await FixtureServer("redirect_server.py", ["http://localhost:\(w.git.port)", redirectLog])
        defer { redirect.stop() }
        let id = try await w.h.seed(tinySpec, repo: "http://127.0.0.1:\(redirect.port)/repo.git")
        try await run(w, ["GIT_TOKEN_HOSTS": "127.0.0.1:\(redirect.port)", "JOB_NETWORK": "host"])
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(try !FixtureServer.jsonLines(redirectLog).isEmpty, "the listed server was asked and redirected")
        #expect(try w.authorized().isEmpty, "the other host never saw the token")
        #expect((try? await Git.run(["-C", w.bare, "rev-parse", "main"])) == nil)
    }
}
