import Foundation
import ChildGeneration
import RunnerCore
import Testing

/// Real-shaped Cline runs: the real job child (agent-runner-job, SANDBOX=enforce)
/// writes the per-job Cline configuration, a fake `cline` of either CLI
/// generation (Tests/Fixtures/fake_cline.py) reads it where the real CLI
/// does and calls a loopback fake provider (Tests/Fixtures/fake_provider.py),
/// which logs the path and headers it received. Until the egress proxy sits
/// in between, the provider route is the fake provider itself, so it must
/// see the placeholder key, and nothing the agent can reach holds the real one.
@Suite(.serialized, .enabled(if: TestEnv.debugBuild,
                             "the provider route comes from the ticket's testProviderBaseURL, which only debug builds have"))
struct ClineProviderTests {
    static let realKey = "sk-REAL-provider-key-0123456789abcdef"
    static let placeholder = ClineProvider.placeholderKey

    struct Run {
        var events: [ChildEvent]
        var stdout: String
        var workspace: String
        var requests: [JSONValue]
        var evidence: JSONValue?
        var ticket: String
        var logs: [String] { events.compactMap { if case .log(let l) = $0 { l } else { nil } } }
        var metadata: JobMetadata? { events.lazy.compactMap { if case .succeeded(let m) = $0 { m } else { nil } }.first }
        var failure: JobFailure? { events.lazy.compactMap { if case .failed(let f) = $0 { f } else { nil } }.first }
    }

    /// Runs one job in the real child with a fake cline in `mode` against a
    /// fake provider answering `scenario`; `route: false` leaves the ticket
    /// without a provider route.
    func run(mode: String, provider: String, model: String? = "test-model-1", scenario: String = "ok",
             args: String? = nil, route: Bool = true) async throws -> Run {
        let root = TestEnv.tempDir("cline")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fixtures = TestEnv.fixtures
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/work", withIntermediateDirectories: true)
        let cline = root + "/bin/cline"
        let script = try String(contentsOfFile: fixtures + "/fake_cline.py", encoding: .utf8)
        try ("#!/usr/bin/env python3\nMODE = \"\(mode)\"\n" + script).write(toFile: cline, atomically: true, encoding: .utf8)
        chmod(cline, 0o755)
        let server = try await FixtureServer("fake_provider.py", [scenario, root + "/requests.jsonl"])
        defer { server.stop() }

        var env = ["MONGODB_URI": "mongodb://127.0.0.1:1", "CLINE_CMD": cline, "CLINE_PROVIDER": provider,
                   "CLINE_API_KEY": Self.realKey, "GENERATORS": "cline,scaffold", "WORKDIR_ROOT": root + "/work"]
        if let model { env["CLINE_MODEL"] = model }
        if let args { env["CLINE_ARGS"] = args }
        var settings = try RunnerConfiguration(environment: env).child
        #expect(settings.sandboxEnforced, "these runs are in the real sandbox")
        // The fake provider answers on the host's loopback, so this child runs
        // without namespaces (the proxy's own tests cover the route end to end).
        settings.network = .host
        let workspace = root + "/work/job1"
        var ticket = JobTicket(jobId: "job1", attempt: 1, projectName: "Tiny", repoURL: nil, architectureSpec: tinySpec,
                               workspace: workspace, settings: settings,
                               secrets: ChildSecrets(githubToken: nil))
        #if DEBUG
        if route { ticket.testProviderBaseURL = "http://127.0.0.1:\(server.port)/provider" }
        #endif
        let ticketText = String(decoding: try JSONEncoder().encode(ticket), as: UTF8.self)
        let r = try await JobChildRun.run(ticket, env: WorkspaceLayout(workspace).environment)
        #expect(r.status == .exited(0), "\(r.stderr)")
        let events = r.events
        let evidence = try? JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: workspace + "/tmp/agent-evidence.json")))
        // Every byte the agent could read or write in its workspace, gathered before cleanup.
        var files = ""
        if let walker = FileManager.default.enumerator(atPath: workspace) {
            for case let rel as String in walker {
                if let data = FileManager.default.contents(atPath: workspace + "/" + rel) {
                    files += String(decoding: data, as: UTF8.self)
                }
            }
        }
        #expect(!files.contains(Self.realKey), "the real key must not be in any file of the job")
        return Run(events: events, stdout: r.stdout, workspace: workspace,
                   requests: try FixtureServer.jsonLines(root + "/requests.jsonl"), evidence: evidence, ticket: ticketText)
    }

    /// The key the provider received, from the header its dialect uses.
    func receivedKey(_ request: JSONValue) -> String? {
        let h = request["headers"]
        if let k = h?["x-api-key"]?.stringValue { return k }
        if let k = h?["x-goog-api-key"]?.stringValue { return k }
        return h?["authorization"]?.stringValue.map { $0.replacingOccurrences(of: "Bearer ", with: "") }
    }

    /// What must hold for every run: no real key anywhere the agent reaches.
    func expectNoRealKey(_ run: Run) {
        #expect(!run.ticket.contains(Self.realKey), "the ticket never carries CLINE_API_KEY")
        #expect(!run.stdout.contains(Self.realKey))
        for r in run.requests { #expect(receivedKey(r) == Self.placeholder, "\(r)") }
        // The agent ran: its evidence (argv and environment) must be there to be checked.
        guard let e = run.evidence else {
            Issue.record("the fake cline wrote no tmp/agent-evidence.json: the agent's argv and environment went unchecked")
            return
        }
        #expect(!e.jsonString.contains(Self.realKey), "argv and environment of the agent")
        #expect(e["env"]?["HOME"]?.stringValue == run.workspace + "/home")
        #expect(e["env"]?["CLINE_DIR"]?.stringValue == run.workspace + "/home/.cline")
    }

    /// (CLINE_PROVIDER, the 3.x provider id, the path the 3.x CLI calls under
    /// the route, and the usage the fake provider reports for that dialect).
    static let v3Cases: [(String, String, String, [Int])] = [
        ("anthropic", "anthropic", "/provider/v1/messages", [1200, 340, 800, 64]),
        ("openai", "openai-native", "/provider/responses", [700, 150, 256, 0]),
        ("openrouter", "openrouter", "/provider/chat/completions", [900, 210, 512, 0]),
        ("gemini", "gemini", "/provider/v1beta/models/test-model-1:streamGenerateContent", [1500, 420, 1000, 0]),
        ("https://llm.internal.example/v1", "openai-compatible", "/provider/chat/completions", [900, 210, 512, 0]),
    ]

    @Test(arguments: 0..<5) func cline3ReadsItsConfigCallsTheRouteAndReportsUsage(_ index: Int) async throws {
        let (provider, id, path, tokens) = Self.v3Cases[index]
        let run = try await run(mode: "v3", provider: provider, args: "-y --json -v -c {repo} -t {timeout} {prompt}")
        let meta = try #require(run.metadata, "\(run.logs) \(String(describing: run.failure))")
        #expect(meta.generator == "cline")
        let agent = try #require(meta.agent)
        #expect(agent.format == "cline-3" && agent.provider == id && agent.model == "test-model-1")
        #expect([agent.inputTokens, agent.outputTokens, agent.cacheReadTokens, agent.cacheWriteTokens] == tokens.map { Optional($0) })
        #expect(agent.cost == Double(tokens[0] * 3 + tokens[1] * 15) / 1e6)
        #expect(agent.iterations == 2 && agent.finishReason == "completed" && agent.durationMs == 1234)
        #expect(meta.json["agent"]?["inputTokens"]?.intValue == Int64(tokens[0]), "metadata.agent is in the job document")
        #expect(run.requests.count == 1)
        #expect(run.requests.first?["path"]?.stringValue == path)
        #expect(run.requests.first?["model"]?.stringValue == "test-model-1")
        expectNoRealKey(run)
        let logs = run.logs
        #expect(logs.contains("cline: run started: provider \(id), model test-model-1, mode act"))
        #expect(logs.contains("cline: I will write the README and the service."))
        #expect(logs.contains("cline tool: editor README.md"))
        #expect(logs.contains("cline tool: run_commands make test"))
        #expect(logs.contains("cline tool run_commands failed: make: not found"))
        #expect(logs.contains("cline: agent done (completed) after 2 iterations"))
        #expect(logs.contains("cline: run finished (completed): Built the project."))
        #expect(logs.contains { $0.hasPrefix("cline usage: model test-model-1 (\(id)), \(tokens[0]) input + \(tokens[1]) output tokens") })
        #expect(!logs.contains { $0.contains("{\"") }, "no raw JSON in the log: \(logs)")
    }

    @Test(arguments: [("anthropic", "/provider/v1/messages", [1200, 340, 800, 64]),
                      ("openrouter", "/provider/chat/completions", [900, 210, 512, 0]),
                      ("gemini", "/provider/v1beta/models/test-model-1:streamGenerateContent", [1500, 420, 1000, 0])])
    func cline2ReadsItsStateFilesAndItsRequestsAreSummed(_ provider: String, _ path: String, _ tokens: [Int]) async throws {
        let run = try await run(mode: "v2", provider: provider)
        let meta = try #require(run.metadata, "\(run.logs) \(String(describing: run.failure))")
        #expect(meta.generator == "cline")
        let agent = try #require(meta.agent)
        let id2 = provider == "openrouter" ? "openai" : provider
        #expect(agent.format == "cline-2" && agent.provider == id2 && agent.model == "test-model-1")
        #expect([agent.inputTokens, agent.outputTokens, agent.cacheReadTokens, agent.cacheWriteTokens]
            == tokens.map { Optional($0 * 2) }, "two API requests")
        #expect(agent.iterations == 2)
        #expect(run.requests.count == 2 && run.requests.allSatisfy { $0["path"]?.stringValue == path })
        expectNoRealKey(run)
        let logs = run.logs
        #expect(logs.contains("cline: task started 1764000000000"))
        #expect(logs.contains { $0.hasPrefix("cline task: Read the build instructions in ") })
        #expect(logs.contains("cline tool: newFileCreated README.md"))
        #expect(logs.contains("cline command: ls -la"))
        #expect(logs.contains("cline: completed: Built the project."))
        #expect(logs.contains { $0.hasPrefix("cline usage: model test-model-1 (\(id2)), \(tokens[0] * 2) input") && $0.hasSuffix("2 API requests") })
        #expect(!logs.contains { $0.contains("{\"") }, "no raw JSON in the log: \(logs)")
    }

    @Test(arguments: ["v3", "v2"]) func aProviderErrorFailsClineAndTheChainFallsBack(_ mode: String) async throws {
        let run = try await run(mode: mode, provider: "anthropic", scenario: "overloaded")
        let meta = try #require(run.metadata, "\(run.logs)")
        #expect(meta.generator == "scaffold")
        #expect(meta.agent == nil, "the failed agent's usage is logged, not recorded for the scaffold's tree")
        let logs = run.logs
        let expected = mode == "v3" ? "529 Overloaded" : "API request failed: 529 Overloaded"
        #expect(logs.contains("cline error: " + expected), "\(logs)")
        #expect(logs.contains("generator cline failed: cline: exited with code 1: 529 Overloaded; trying the next one"), "\(logs)")
        #expect(!FileManager.default.fileExists(atPath: run.workspace + "/repo/api/server.js"))
        expectNoRealKey(run)
    }

    @Test func anAbortedRunFailsEvenWithExitZero() async throws {
        let run = try await run(mode: "v3-aborted", provider: "openrouter")
        #expect(run.metadata?.generator == "scaffold", "\(run.logs)")
        #expect(run.logs.contains("cline: run aborted: the run was aborted from outside"))
        #expect(run.logs.contains("generator cline failed: cline: run aborted: the run was aborted from outside; trying the next one"))
    }

    @Test func theCLIsOwnTimeoutFailsTheRun() async throws {
        let run = try await run(mode: "v3-timeout", provider: "gemini")
        #expect(run.metadata?.generator == "scaffold", "\(run.logs)")
        #expect(run.logs.contains("cline error: run timed out after 1170s"))
        #expect(run.logs.contains("generator cline failed: cline: exited with code 1: run timed out after 1170s; trying the next one"))
    }

    @Test func aProviderWithoutARouteSkipsCline() async throws {
        let run = try await run(mode: "v3", provider: "anthropic", route: false)
        #expect(run.metadata?.generator == "scaffold")
        #expect(run.logs.contains { $0.hasPrefix("generator cline skipped: CLINE_PROVIDER=anthropic needs the egress proxy's provider route") })
        #expect(run.requests.isEmpty && run.evidence == nil, "the agent did not run")
        #expect(!run.ticket.contains(Self.realKey))
    }
}
