import Foundation
import RunnerCore
import Testing

/// Publishing over smart HTTP with basic auth: `git http-backend` on loopback.
@Suite(.serialized) struct HTTPPublishingTests {
    static let token = "ghp_" + "T0kenForTheLoopbackGitServer0123456789"

    struct World {
        let h: Harness
        let server: FixtureServer
        let log: String
        var url: String { "http://127.0.0.1:\(server.port)/repo.git" }
        var bare: String { h.root + "/srv/repo.git" }
        func requests() throws -> [JSONValue] { try FixtureServer.jsonLines(log) }
        func stop() { server.stop(); h.cleanup() }
    }

    func world(scenario: String = "") async throws -> World {
        let h = try Harness()
        try FileManager.default.createDirectory(atPath: h.root + "/srv", withIntermediateDirectories: true)
        try await Git.initBare(h.root + "/srv/repo.git")
        let log = h.root + "/git-requests.jsonl"
        let server = try await FixtureServer("git_http_server.py", [h.root + "/srv", Self.token, log, scenario])
        return World(h: h, server: server, log: log)
    }

    func run(_ w: World, token: String = token) async throws {
        let r = try await w.h.agentRunner(["run", "--exit-when-idle", "--concurrency", "1"],
                                          env: ["GITHUB_TOKEN": token, "JOB_MAX_ATTEMPTS": "1",
                                                // The git server is on loopback: only an exact rule opens it.
                                                "JOB_EGRESS_ALLOW": "127.0.0.1:\(w.server.port)",
                                                // ... and a token goes to it only as a GIT_TOKEN_HOSTS host.
                                                "GIT_TOKEN_HOSTS": "127.0.0.1:\(w.server.port)"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains(token), "the token must never reach the supervisor's log")
    }

    @Test func firstPushThenOnTopThenUnchangedWithoutLeakingTheToken() async throws {
        let w = try await world()
        defer { w.stop() }
        let first = try await w.h.seed(tinySpec, repo: w.url)
        try await run(w)
        let job1 = try await w.h.job(first)
        #expect(job1["status"]?.stringValue == "done", "\(job1.jsonString)")
        let head1 = try await Git.run(["-C", w.bare, "rev-parse", "main"])
        #expect(job1["metadata"]?["commitSha"]?.stringValue == head1)
        #expect(job1["metadata"]?["repoUrl"]?.stringValue == w.url)
        #expect(job1["metadata"]?["parentSha"] == nil)
        #expect(job1["metadata"]?["files"]?.intValue ?? 0 > 2)
        #expect(job1["metadata"]?["bytes"]?.intValue ?? 0 > 0)

        // A second job of the same project commits on top of the first.
        let projectId = job1["projectId"]!.stringValue!
        var changed = tinySpec.objectValue!
        changed["description"] = "now with a description"
        let second = try await w.h.store.insertJob(projectId: projectId, spec: .object(changed))
        try await run(w)
        let job2 = try await w.h.job(second)
        #expect(job2["status"]?.stringValue == "done")
        #expect(job2["metadata"]?["parentSha"]?.stringValue == head1)
        #expect(try await Git.run(["-C", w.bare, "rev-parse", "main^"]) == head1)
        let head2 = try await Git.run(["-C", w.bare, "rev-parse", "main"])

        // The same architecture again: nothing to commit, the current commit is reported.
        let third = try await w.h.store.insertJob(projectId: projectId, spec: .object(changed))
        try await run(w)
        let job3 = try await w.h.job(third)
        #expect(job3["status"]?.stringValue == "done")
        #expect(job3["metadata"]?["unchanged"]?.boolValue == true)
        #expect(job3["metadata"]?["commitSha"]?.stringValue == head2)
        #expect(try await Git.run(["-C", w.bare, "rev-parse", "main"]) == head2)

        // The token is in no file of any workspace and in no log line.
        let grep = try await runProcess("/usr/bin/grep", ["-rIl", Self.token, w.h.workdir])
        #expect(grep.stdout.isEmpty, "token found in \(grep.stdout)")
        let binaryGrep = try await runProcess("/usr/bin/grep", ["-rl", Self.token, w.h.workdir])
        #expect(binaryGrep.stdout.isEmpty)
        for id in [first, second, third] {
            #expect(!(try await w.h.job(id)).jsonString.contains(Self.token))
        }
        let config = try String(contentsOfFile: w.h.workspace(first) + "/repo/.git/config", encoding: .utf8)
        #expect(config.contains(w.url) && !config.contains("@"))
    }

    @Test func wrongTokenFailsFastWithPushAuthFailed() async throws {
        let w = try await world()
        defer { w.stop() }
        let id = try await w.h.seed(tinySpec, repo: w.url)
        try await run(w, token: "ghp_" + "WrongWrongWrongWrongWrong0123456789")
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "push_auth_failed")
        #expect(job["error"]?["retryable"]?.boolValue == false)
        let attempts = try w.requests().filter { $0["auth"]?.stringValue == "bad" }.count
        #expect(attempts >= 1 && attempts <= 5, "the server saw \(attempts) authentication attempts")
    }

    @Test func branchMovedBetweenFetchAndPushIsRejected() async throws {
        let w = try await world(scenario: "move-before-push")
        defer { w.stop() }
        let id = try await w.h.seed(tinySpec, repo: w.url)
        try await run(w)
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job["logs"]?.jsonString ?? "")")
        #expect(job["error"]?["code"]?.stringValue == "push_rejected", "\(job["error"]?.jsonString ?? "")")
        #expect(job["error"]?["retryable"]?.boolValue == true)
        #expect(try await Git.run(["-C", w.bare, "log", "-1", "--format=%s", "main"]) == "someone else")
    }

    @Test func untrustedTLSCertificateIsRefused() async throws {
        let h = try Harness()
        try FileManager.default.createDirectory(atPath: h.root + "/srv", withIntermediateDirectories: true)
        try await Git.initBare(h.root + "/srv/repo.git")
        let openssl = try await runProcess("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", h.root + "/key.pem", "-out", h.root + "/cert.pem"])
        #expect(openssl.status == 0, "\(openssl.stderr)")
        let log = h.root + "/git-requests.jsonl"
        let server = try await FixtureServer("git_http_server.py", [h.root + "/srv", Self.token, log, "tls"])
        let w = World(h: h, server: server, log: log)
        defer { w.stop() }
        let id = try await h.seed(tinySpec, repo: "https://127.0.0.1:\(server.port)/repo.git")
        try await run(w)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "push_failed", "\(job["error"]?.jsonString ?? "")")
        // Through the egress proxy's CONNECT tunnel libgit2 (mbedTLS) reports a generic SSL error.
        #expect(job["error"]?["message"]?.stringValue?.lowercased().contains("certificate") == true
                    || job["error"]?["message"]?.stringValue?.contains("SSL error") == true,
                "\(job["error"]?.jsonString ?? "")")
        #expect(try w.requests().isEmpty, "no request may pass an unverified TLS handshake")
    }
}
