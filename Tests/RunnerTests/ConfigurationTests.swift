import Foundation
import RunnerCore
import Testing

@Suite struct ConfigurationTests {
    let base = ["MONGODB_URI": "mongodb://127.0.0.1:1/"]

    @Test func defaultsMatchTheContract() throws {
        let c = try RunnerConfiguration(environment: base)
        #expect(c.databaseName == "architex")
        #expect(c.pollSeconds == 2)
        #expect(c.child.authorName == "Architex Bot")
        #expect(c.child.authorEmail == "bot@architex.local")
        #expect(c.child.branch == "main" && c.child.remoteName == "origin")
        #expect(c.child.clineEnabled && c.child.clineCommand == "cline")
        #expect(c.child.generators == [.cline, .gemini, .scaffold])
        #expect(c.child.geminiModel == "gemini-flash-latest")
        #expect(c.child.sandboxEnforced)
        #expect(c.leaseSeconds == 30 && c.jobTimeoutSeconds == 1800 && c.maxAttempts == 3)
    }

    @Test func missingURINamesTheVariable() {
        let e = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: [:]) }
        #expect(e?.variable == "MONGODB_URI")
    }

    @Test(arguments: [
        ("RUNNER_CONCURRENCY", "zero"), ("RUNNER_CONCURRENCY", "0"), ("LEASE_SECONDS", "-5"),
        ("KEEP_WORKSPACES", "sometimes"), ("GENERATORS", "cline,magic"), ("SANDBOX", "maybe"),
        ("CLINE_ENABLED", "perhaps"), ("LOG_FORMAT", "xml"), ("WORKDIR_ROOT", "relative/path"),
        ("CLONE_DEFAULT_BRANCH", "bad..name"), ("GIT_AUTHOR_EMAIL", "nobody"), ("MONGODB_URI", "http://x"),
        ("RUNNER_POLL_SECONDS", "soon"), ("GEMINI_API_BASE", "ftp://x"),
        // expireAfterSeconds (days × 86400) must fit an Int32: 24,856 days do not.
        ("JOB_EVENTS_TTL_DAYS", "24856"), ("JOB_EVENTS_TTL_DAYS", "36500"),
    ])
    func badValuesNameTheVariable(name: String, value: String) {
        var env = base
        env[name] = value
        let e = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: env) }
        #expect(e?.variable == name)
        #expect(e?.description.contains(name) == true)
    }

    /// The longest JOB_EVENTS_TTL_DAYS whose seconds fit the TTL index's 32-bit expireAfterSeconds.
    @Test func theLongestEventsTTLFitsTheIndex() throws {
        var env = base
        env["JOB_EVENTS_TTL_DAYS"] = "24855"
        let days = try RunnerConfiguration(environment: env).eventsTTLDays
        #expect(days == 24_855 && days * 86_400 <= Int(Int32.max))
    }

    @Test func envFileIsOverlaidByTheEnvironment() throws {
        let dir = TestEnv.tempDir("env")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/.env"
        try """
        # comment
        MONGODB_URI=mongodb://file-host:27017/
        export MONGO_DB_NAME="fromfile"
        RUNNER_CONCURRENCY='4'
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let env = try RunnerConfiguration.environment(envFile: path, process: ["RUNNER_CONCURRENCY": "3"])
        let c = try RunnerConfiguration(environment: env)
        #expect(c.mongoURI == "mongodb://file-host:27017/")
        #expect(c.databaseName == "fromfile")
        #expect(c.concurrency == 3)
    }

    @Test func everyVariableHasADocumentedDefault() throws {
        let example = try String(contentsOfFile: TestEnv.repoRoot + "/.env.example", encoding: .utf8)
        for (name, _) in RunnerConfiguration.defaults {
            #expect(example.contains(name + "="), "\(name) is missing from .env.example")
        }
    }

    /// The child's part of the configuration is one value: the ticket carries it
    /// whole, and the hidden paths follow the env file the settings came from.
    @Test func childSettingsTravelWholeInTheTicket() throws {
        var c = try RunnerConfiguration(environment: ["MONGODB_URI": "mongodb://h", "GENERATORS": "scaffold,gemini",
                                                      "JOB_NETWORK": "none", "JOB_MAX_PROCESSES": "99"])
        #expect(c.child.sandboxHiddenPaths == ["/etc/agent-runner"])
        c.envFilePath = "/srv/runner/.env"
        #expect(c.child.sandboxHiddenPaths == ["/etc/agent-runner", "/srv/runner/.env"])
        let ticket = JobTicket(jobId: "j", attempt: 1, projectName: "P", repoURL: nil, architectureSpec: [:],
                               workspace: "/w", settings: c.child, secrets: ChildSecrets(githubToken: nil))
        let decoded = try JSONDecoder().decode(JobTicket.self, from: JSONEncoder().encode(ticket))
        #expect(decoded.settings == c.child)
        #expect(decoded.settings.generators == [.scaffold, .gemini] && decoded.settings.network == .none
                && decoded.settings.maxProcesses == 99)
    }

    /// One layout names the workspace's folders and sets HOME and TMPDIR inside it.
    @Test func workspaceLayoutKeepsEverythingInsideTheWorkspace() {
        let w = WorkspaceLayout(workdirRoot: "/work", jobId: "a.b")
        #expect(w.root == "/work/" + WorkspaceName.of("a.b"))
        #expect(w.childFolders == [w.root, w.root + "/input", w.root + "/repo", w.root + "/home", w.root + "/tmp"])
        #expect(w.environment["HOME"] == w.home && w.environment["TMPDIR"] == w.tmp)
        #expect(w.environment.values.allSatisfy { !$0.hasPrefix("/work") || $0.hasPrefix(w.root + "/") })
        #expect(!w.writable.contains(w.run) && !w.writable.contains(w.root))
    }
}
