#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import Testing

/// The GitHub App token helper receives the App's private key, so it is
/// always the agent-runner-job installed beside agent-runner, never the job
/// child that AGENT_RUNNER_JOB_PATH names (any executable, e.g. a stand-in).
/// Without that sibling, a job that needs an App token fails
/// `push_auth_failed` naming the path, and `doctor` says so.
@Suite(.serialized) struct TokenHelperTests {
    static let standInToken = "ghs_" + "FromTheStandInNeverFromGitHub0123456"

    /// A stand-in job child (SANDBOX=off, JOB_NETWORK=host): asks for the
    /// push token and records the line it gets. Run as a token helper, it
    /// records its stdin (where the private key would be) and answers with a
    /// token of its own.
    func standIn(_ root: String) throws -> String {
        let path = root + "/stand-in-child"
        try """
        #!/usr/bin/python3
        import json, sys
        if sys.argv[1:] == ["--github-app-token"]:
            open("\(root)/helper-stdin", "w").write(sys.stdin.read())
            print(json.dumps({"token": "\(Self.standInToken)"}), flush=True)
            sys.exit(0)
        sys.stdin.readline()
        print(json.dumps({"type": "push_token_request"}), flush=True)
        open("\(root)/token-line", "w").write(sys.stdin.readline())
        print(json.dumps({"type": "result", "ok": True, "metadata": {"generator": "fake"}}), flush=True)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    struct App {
        let env: [String: String]
        let api: FixtureServer
        let apiLog: String
    }

    func app(_ w: PushTokenTests.World, standIn: String) async throws -> App {
        let (key, pub) = try await PushTokenTests().keyPair(w.h.root)
        let apiLog = w.h.root + "/api.jsonl"
        let api = try await FixtureServer("github_app_server.py", [pub, "98765", PushTokenTests.token, apiLog])
        return App(env: ["GIT_TOKEN_SOURCE": "github-app", "GITHUB_APP_ID": "98765", "GITHUB_APP_PRIVATE_KEY_FILE": key,
                         "GITHUB_API_URL": "http://127.0.0.1:\(api.port)", "SANDBOX": "off", "JOB_NETWORK": "host",
                         "AGENT_RUNNER_JOB_PATH": standIn, "JOB_MAX_ATTEMPTS": "1",
                         "GIT_TOKEN_HOSTS": "127.0.0.1:\(w.git.port)"],
                   api: api, apiLog: apiLog)
    }

    @Test func theSiblingMintsTheTokenNeverTheConfiguredJobChild() async throws {
        let tests = PushTokenTests()
        let w = try await tests.world()
        defer { w.stop() }
        let a = try await app(w, standIn: try standIn(w.h.root))
        defer { a.api.stop() }
        let id = try await tests.appJob(w, user: "octo")
        try await tests.run(w, a.env)
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job["error"]?.jsonString ?? "")")
        #expect(!FileManager.default.fileExists(atPath: w.h.root + "/helper-stdin"),
                "the configured job child never ran as the token helper, so never saw the private key")
        let line = (try? String(contentsOfFile: w.h.root + "/token-line", encoding: .utf8)) ?? ""
        #expect(line.contains(PushTokenTests.token) && !line.contains(Self.standInToken), "the sibling's token: \(line)")
        #expect(try FixtureServer.jsonLines(a.apiLog).count == 4, "the real helper asked the API")
    }

    @Test func withoutASiblingTheJobFailsNamingThePathAndTheKeyGoesNowhere() async throws {
        let tests = PushTokenTests()
        let w = try await tests.world()
        defer { w.stop() }
        let a = try await app(w, standIn: try standIn(w.h.root))
        defer { a.api.stop() }
        // agent-runner alone in a folder (a hard link: /proc/self/exe names the link's path).
        let lonely = w.h.root + "/lonely"
        try FileManager.default.createDirectory(atPath: lonely, withIntermediateDirectories: true)
        try #require(link(TestEnv.binDir + "/agent-runner", lonely + "/agent-runner") == 0, "hard link: \(errno)")
        let id = try await tests.appJob(w, user: "octo")
        let r = try await runProcess(lonely + "/agent-runner", ["run", "--exit-when-idle"], env: w.h.environment(a.env),
                                     cwd: w.h.root)
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "push_auth_failed", "\(job["error"]?.jsonString ?? "")")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.hasPrefix("GIT_TOKEN_SOURCE=github-app") && message.contains(lonely + "/agent-runner-job")
                && message.contains("missing or not executable"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: w.h.root + "/helper-stdin"), "the private key went to no stand-in")
        let line = (try? String(contentsOfFile: w.h.root + "/token-line", encoding: .utf8)) ?? ""
        #expect(!line.contains("ghs_"), "no token handed over: \(line)")
        #expect(try FixtureServer.jsonLines(a.apiLog).isEmpty && FixtureServer.jsonLines(w.gitLog).isEmpty)
        // doctor says the same before any job does.
        var env = a.env
        env["AGENT_RUNNER_JOB_PATH"] = TestEnv.binDir + "/agent-runner-job"
        let d = try await runProcess(lonely + "/agent-runner", ["doctor"], env: w.h.environment(env), cwd: w.h.root)
        let check = d.stdout.split(separator: "\n").first { $0.contains("GIT_TOKEN_SOURCE=github-app") } ?? ""
        #expect(check.hasPrefix("fail") && check.contains(lonely + "/agent-runner-job"), "\(d.stdout)")
    }
}
