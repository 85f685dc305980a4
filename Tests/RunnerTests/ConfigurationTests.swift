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
        #expect(c.child.generators == ["cline", "gemini", "scaffold"])
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
    ])
    func badValuesNameTheVariable(name: String, value: String) {
        var env = base
        env[name] = value
        let e = #expect(throws: ConfigurationError.self) { try RunnerConfiguration(environment: env) }
        #expect(e?.variable == name)
        #expect(e?.description.contains(name) == true)
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
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let example = try String(contentsOf: root.appendingPathComponent(".env.example"), encoding: .utf8)
        for (name, _) in RunnerConfiguration.defaults {
            #expect(example.contains(name + "="), "\(name) is missing from .env.example")
        }
    }
}
