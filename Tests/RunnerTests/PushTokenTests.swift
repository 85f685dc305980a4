import Foundation
import RunnerCore
import Testing
@testable import JobStore

/// GIT_TOKEN_SOURCE (issue 14, item 3): pushes with the repository owner's
/// rights. A loopback server answers like GitHub's installation-token API
/// and checks the RS256 JWT; the loopback git server accepts only the token
/// the source should yield.
@Suite(.serialized) struct PushTokenTests {
    static let token = "ghs_" + "InstallationTokenForTheLoopback0123456789"

    struct World {
        let h: Harness
        let git: FixtureServer
        let gitLog: String
        var url: String { "http://127.0.0.1:\(git.port)/acme/shop.git" }
        var bare: String { h.root + "/srv/acme/shop.git" }
        func stop() { git.stop(); h.cleanup() }
    }

    func world() async throws -> World {
        let h = try Harness()
        try FileManager.default.createDirectory(atPath: h.root + "/srv/acme", withIntermediateDirectories: true)
        try await Git.initBare(h.root + "/srv/acme/shop.git")
        let log = h.root + "/git-requests.jsonl"
        let git = try await FixtureServer("git_http_server.py", [h.root + "/srv", Self.token, log])
        // The user of the App's jobs: GitHub says octocat may push (github_app_server.py).
        try await h.store.pool.run("users") { try CollectionOps.insert($0, ["_id": "octo", "github_login": "octocat"]) }
        return World(h: h, git: git, gitLog: log)
    }

    /// An RSA key pair made with the real openssl; returns (private, public) paths.
    func keyPair(_ dir: String, _ name: String = "app") async throws -> (String, String) {
        let key = dir + "/\(name).pem", pub = dir + "/\(name).pub.pem"
        let gen = try await runProcess("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                                                            "-out", key])
        #expect(gen.status == 0, "\(gen.stderr)")
        let out = try await runProcess("/usr/bin/openssl", ["pkey", "-in", key, "-pubout", "-out", pub])
        #expect(out.status == 0, "\(out.stderr)")
        return (key, pub)
    }

    func appJob(_ w: World, user: String? = nil) async throws -> String {
        let projectId = UUID().uuidString.lowercased()
        try await w.h.store.pool.run("projects") {
            try CollectionOps.insert($0, ["_id": .string(projectId), "name": "Shop", "github_repo_url": .string(w.url)])
        }
        var job: [String: JSONValue] = ["_id": .string("job-" + projectId.prefix(8)), "project_id": .string(projectId),
                                        "architecture_spec": tinySpec, "status": "pending", "logs": [],
                                        "created_at": .date(Date())]
        if let user { job["user_id"] = .string(user) }
        let doc = JSONValue.object(job)
        try await w.h.store.pool.run("jobs") { try CollectionOps.insert($0, doc) }
        return job["_id"]!.stringValue!
    }

    /// The GitHub App stand-in on loopback (with `grants`, GitHub's word on
    /// who may push), its request log, and the settings that sign the App's
    /// JWTs with `signingKey` (the App's own key unless given).
    struct AppServer {
        let api: FixtureServer
        let log: String
        let env: [String: String]
    }

    func appServer(_ w: World, grants: String? = nil, signingKey: String? = nil) async throws -> AppServer {
        let (key, pub) = try await keyPair(w.h.root)
        let log = w.h.root + "/api.jsonl"
        let api = try await FixtureServer("github_app_server.py", [pub, "98765", Self.token, log] + (grants.map { [$0] } ?? []))
        return AppServer(api: api, log: log, env: [
            "GIT_TOKEN_SOURCE": "github-app", "GITHUB_APP_ID": "98765", "GITHUB_APP_PRIVATE_KEY_FILE": signingKey ?? key,
            "GITHUB_API_URL": "http://127.0.0.1:\(api.port)"])
    }

    func run(_ w: World, _ env: [String: String]) async throws {
        var all = env
        all["JOB_MAX_ATTEMPTS"] = "1"
        // The git server is on loopback: only an exact egress rule opens it,
        // and a token goes to it only as a GIT_TOKEN_HOSTS host.
        all["JOB_EGRESS_ALLOW"] = "127.0.0.1:\(w.git.port)"
        all["GIT_TOKEN_HOSTS"] = all["GIT_TOKEN_HOSTS"] ?? "127.0.0.1:\(w.git.port)"
        let r = try await w.h.agentRunner(["run", "--exit-when-idle"], env: all)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains(Self.token), "the token must never reach the supervisor's log")
    }

    @Test func githubAppMintsARepositoryScopedTokenAndThePushUsesIt() async throws {
        let w = try await world()
        defer { w.stop() }
        let app = try await appServer(w)
        defer { app.api.stop() }
        let id = try await appJob(w, user: "octo")
        try await run(w, app.env)
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.prettyString)")
        #expect(job["metadata"]?["commitSha"]?.stringValue == (try await Git.run(["-C", w.bare, "rev-parse", "main"])))
        let calls = try FixtureServer.jsonLines(app.log)
        // The installation, a read-only token, GitHub's word that octocat may push, and only then the push token.
        #expect(calls.map { $0["path"]?.stringValue ?? "" } == ["/repos/acme/shop/installation", "/app/installations/4242/access_tokens",
                                                                "/repos/acme/shop/collaborators/octocat/permission",
                                                                "/app/installations/4242/access_tokens"])
        #expect(calls.map { $0["jwt"]?.stringValue ?? "" } == ["ok", "ok", "read-token", "ok"],
                "the app's calls carry a valid RS256 JWT, the check the read-only token")
        #expect(calls[1]["body"] == ["repositories": ["shop"], "permissions": ["metadata": "read"]])
        #expect(calls.last?["body"] == ["repositories": ["shop"], "permissions": ["contents": "write"]])
        #expect(!(job.jsonString.contains(Self.token)), "the token is never stored")
        let pushes = try FixtureServer.jsonLines(w.gitLog).filter { $0["query"]?.stringValue?.contains("receive-pack") == true }
        #expect(pushes.contains { $0["auth"] == "ok" })
    }

    @Test func githubAppAsksForPullRequestsWriteWhenPullRequestsAreAllowed() async throws {
        let w = try await world()
        defer { w.stop() }
        let app = try await appServer(w)
        defer { app.api.stop() }
        let id = try await appJob(w, user: "octo")
        try await run(w, app.env.merging(["PUBLISH_MODES_ALLOWED": "push,pull-request"]) { $1 })
        #expect(try await w.h.job(id)["status"]?.stringValue == "done")
        let calls = try FixtureServer.jsonLines(app.log)
        #expect(calls.last?["body"] == ["repositories": ["shop"],
                                        "permissions": ["contents": "write", "pull_requests": "write"]])
    }

    @Test func doctorOnlineChecksTheGitHubAppsPermissions() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (key, pub) = try await keyPair(h.root)
        let env = ["GIT_TOKEN_SOURCE": "github-app", "GITHUB_APP_ID": "98765", "GITHUB_APP_PRIVATE_KEY_FILE": key,
                   "GIT_TOKEN_HOSTS": "127.0.0.1", "PUBLISH_MODES_ALLOWED": "push,pull-request"]
        for (granted, line) in [
            (#"{"contents": "write", "metadata": "read", "pull_requests": "write"}"#,
             "ok    GitHub App permissions: the App and its installations have contents: write, metadata: read, pull_requests: write"),
            (#"{"contents": "write", "metadata": "read"}"#,
             "fail  GitHub App permissions (contents: write, metadata: read, pull_requests: write needed): missing permissions: "
                + "the App: pull_requests: write (has none); the installation on acme: pull_requests: write (has none)"),
        ] {
            let api = try await FixtureServer("github_app_server.py", [pub, "98765", Self.token, h.root + "/api.jsonl"],
                                              environment: ["APP_PERMISSIONS": granted])
            defer { api.stop() }
            let r = try await h.agentRunner(["doctor", "--online"], env: env.merging(["GITHUB_API_URL": "http://127.0.0.1:\(api.port)"]) { $1 })
            #expect(r.stdout.split(separator: "\n").contains { $0 == line }, "\(r.stdout)")
        }
        // Without --online, the doctor names what is needed and asks nobody.
        let offline = try await h.agentRunner(["doctor"], env: env.merging(["GITHUB_API_URL": "http://127.0.0.1:9"]) { $1 })
        #expect(offline.stdout.contains("GitHub App permissions needed: contents: write, metadata: read, pull_requests: write (not checked"))
    }

    @Test func githubAppWithTheWrongKeyFailsPushAuthNamingTheSource() async throws {
        let w = try await world()
        defer { w.stop() }
        let (otherKey, _) = try await keyPair(w.h.root, "other")
        let app = try await appServer(w, signingKey: otherKey)
        defer { app.api.stop() }
        let id = try await appJob(w, user: "octo")
        try await run(w, app.env)
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "push_auth_failed")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("GIT_TOKEN_SOURCE=github-app") && message.contains("HTTP 401"), "\(message)")
        // The app server was asked (a JWT it refused), and never with a JWT it accepts.
        let calls = try FixtureServer.jsonLines(app.log)
        #expect(!calls.isEmpty, "the GitHub App server was never asked")
        #expect(calls.allSatisfy { $0["jwt"] == "bad" }, "\(calls)")
        #expect(try FixtureServer.jsonLines(w.gitLog).isEmpty, "nothing reached the git server")
    }

    /// github-app: GitHub must say the job's user may push to the repository
    /// before a push token exists; a reader, a user without a GitHub login
    /// and a repository on another host get none.
    @Test func githubAppMintsOnlyForAUserWhoMayPushOnTheAppsHost() async throws {
        let w = try await world()
        defer { w.stop() }
        let app = try await appServer(w, grants: #"{"octocat": "write", "reader": "read"}"#)
        defer { app.api.stop() }
        try await w.h.store.pool.run("users") {
            try CollectionOps.insert($0, ["_id": "rd", "github_login": "reader"])
            try CollectionOps.insert($0, ["_id": "nologin", "email": "n@example.com"])
        }
        let env = app.env
        let reader = try await appJob(w, user: "rd")
        try await run(w, env)
        let denied = try await w.h.job(reader)
        #expect(denied["error"]?["code"]?.stringValue == "push_auth_failed", "\(denied.jsonString)")
        #expect(denied["error"]?["message"]?.stringValue == "GIT_TOKEN_SOURCE=github-app: no installation token for acme/shop: "
            + "push permission check failed: GitHub user reader has 'read' on acme/shop; a push needs admin, maintain or write")
        let calls = try FixtureServer.jsonLines(app.log)
        #expect(calls.last?["path"]?.stringValue == "/repos/acme/shop/collaborators/reader/permission")
        #expect(!calls.contains { $0["body"]?["permissions"]?["contents"] != nil }, "no push token was minted")
        #expect(try FixtureServer.jsonLines(w.gitLog).isEmpty)

        let noLogin = try await appJob(w, user: "nologin")
        try await run(w, env)
        #expect(try await w.h.job(noLogin)["error"]?["message"]?.stringValue == "GIT_TOKEN_SOURCE=github-app: the push "
            + "permission check needs the job's user's GitHub login: user nologin has no users.github_login")
        #expect(try FixtureServer.jsonLines(app.log).count == calls.count, "the API was not asked")

        // A repository on another host than the App's: no token is minted for it, the push is skipped.
        let projectId = try await w.h.store.insertProject(name: "Victim", repoURL: "https://evil.example/victim-org/victim-repo.git")
        let elsewhere = try await w.h.store.insertJob(projectId: projectId, spec: tinySpec)
        try await run(w, env)
        let skipped = try await w.h.job(elsewhere)
        #expect(skipped["status"]?.stringValue == "done", "\(skipped.jsonString)")
        #expect(skipped["metadata"]?["pushSkippedReason"]?.stringValue?.contains("evil.example:443 is not in GIT_TOKEN_HOSTS") == true)
        #expect(try FixtureServer.jsonLines(app.log).count == calls.count, "the API was not asked")

        // The App's tokens go to its own host only: a list without it is refused at start.
        var bad = Harness.minimalConfig.merging(env) { $1 }
        bad["GIT_TOKEN_HOSTS"] = "github.com"
        let e = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: bad) }
        #expect(e?.variable == "GIT_TOKEN_HOSTS" && e?.reason.contains("127.0.0.1") == true)
    }

    @Test func userSourcePushesWithTheUsersOwnTokenAndFailsClearlyWithoutOne() async throws {
        let w = try await world()
        defer { w.stop() }
        try await w.h.store.pool.run("users") {
            try CollectionOps.insert($0, ["_id": "user-1", "email": "a@example.com", "github_access_token": .string(Self.token)])
        }
        try await w.h.store.pool.run("users") { try CollectionOps.insert($0, ["_id": "user-2", "email": "b@example.com"]) }
        let good = try await appJob(w, user: "user-1")
        try await run(w, ["GIT_TOKEN_SOURCE": "user", "GITHUB_TOKEN": "ghp_" + "GlobalTokenTheServerRejects00000000"])
        let done = try await w.h.job(good)
        #expect(done["status"]?.stringValue == "done", "\(done.prettyString)")
        #expect(done["metadata"]?["commitSha"]?.stringValue == (try await Git.run(["-C", w.bare, "rev-parse", "main"])))
        let missing = try await appJob(w, user: "user-2")
        try await run(w, ["GIT_TOKEN_SOURCE": "user"])
        let failed = try await w.h.job(missing)
        #expect(failed["error"]?["code"]?.stringValue == "push_auth_failed")
        #expect(failed["error"]?["message"]?.stringValue == "GIT_TOKEN_SOURCE=user: user user-2 has no users.github_access_token")
        let anonymous = try await appJob(w)
        try await run(w, ["GIT_TOKEN_SOURCE": "user"])
        #expect(try await w.h.job(anonymous)["error"]?["message"]?.stringValue?.contains("no userId (nor user_id)") == true)
    }

    /// A push token fetched for the job (here a user's, in no GitHub token
    /// format the patterns know) is redacted from whatever the child relays.
    @Test func aFetchedPushTokenNeverReachesTheJobsLog() async throws {
        let w = try await world()
        defer { w.stop() }
        let plain = "plain-user-token-" + "0123456789abcdef"
        try await w.h.store.pool.run("users") {
            try CollectionOps.insert($0, ["_id": "user-3", "github_access_token": .string(plain)])
        }
        let id = try await appJob(w, user: "user-3")
        // A stand-in child that asks for the token and then prints it, as a log event and on stderr.
        let child = w.h.root + "/echo-token-child"
        try """
        #!/usr/bin/python3
        import json, sys
        sys.stdin.readline()
        print(json.dumps({"type": "push_token_request"}), flush=True)
        token = json.loads(sys.stdin.readline())["githubToken"]
        print(json.dumps({"type": "log", "line": "remote said no to " + token}), flush=True)
        print("stderr: " + token, file=sys.stderr, flush=True)
        print(json.dumps({"type": "result", "ok": True, "metadata": {"generator": "fake"}}), flush=True)
        """.write(toFile: child, atomically: true, encoding: .utf8)
        chmod(child, 0o755)
        try await run(w, ["GIT_TOKEN_SOURCE": "user", "AGENT_RUNNER_JOB_PATH": child])
        let job = try await w.h.job(id)
        let logs = job["logs"]?.jsonString ?? ""
        #expect(logs.contains("remote said no to [REDACTED]"), "the child's line is there, token hidden: \(logs)")
        #expect(logs.contains("stderr: [REDACTED]"), "\(logs)")
        #expect(!job.jsonString.contains(plain), "\(job.jsonString)")
    }

    @Test func tokenSourceSettingsAreValidated() throws {
        var env = Harness.minimalConfig
        env["GIT_TOKEN_SOURCE"] = "vault"
        #expect((try? RunnerConfiguration(environment: env)) == nil)
        env["GIT_TOKEN_SOURCE"] = "github-app"
        let noId = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: env) }
        #expect(noId?.variable == "GITHUB_APP_ID")
        env["GITHUB_APP_ID"] = "123"
        env["GITHUB_APP_PRIVATE_KEY_FILE"] = "/nonexistent/key.pem"
        let noKey = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: env) }
        #expect(noKey?.variable == "GITHUB_APP_PRIVATE_KEY_FILE")
        env = Harness.minimalConfig
        env["GIT_TOKEN_USER_FIELD"] = "$where"
        let badField = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: env) }
        #expect(badField?.variable == "GIT_TOKEN_USER_FIELD")
        #expect(RepositoryPath.ownerAndName("https://github.com/acme/shop.git")! == ("acme", "shop"))
        #expect(RepositoryPath.ownerAndName("file:///srv/repo.git") == nil)
        #expect(RepositoryPath.ownerAndName("https://github.com/x/acme/shop.git") == nil, "exactly owner/name")
        env = Harness.minimalConfig
        env["GIT_USER_LOGIN_FIELD"] = "$where"
        #expect((try? RunnerConfiguration(environment: env)) == nil)
    }
}
