#if canImport(Glibc)
import Glibc
#endif
@testable import ChildGeneration
import Foundation
import RunnerCore
import Testing

/// The pure parts of the aider and mini-swe-agent generators: the typed
/// generator names, the model route, the argv and environment they are given,
/// and how their output and trajectory become log lines and usage. The real
/// agents run end to end in AgentEndToEndTests.
struct AgentCLITests {
    static let workspace = "/w/job"

    func settings(_ env: [String: String] = [:]) throws -> ChildSettings {
        try RunnerConfiguration(environment: ["MONGODB_URI": "mongodb://h", "CLINE_PROVIDER": "openrouter",
                                              "CLINE_MODEL": "m1"].merging(env) { $1 }).child
    }

    @Test func generatorNamesAreDecodedOnceFromGENERATORS() throws {
        #expect(try GeneratorName.parseList("cline, aider,mini-swe-agent,gemini,scaffold")
                == [.cline, .aider, .miniSWEAgent, .gemini, .scaffold])
        #expect(throws: ConfigurationError.self) { try GeneratorName.parseList("cline,mini") }
        #expect(throws: ConfigurationError.self) { try GeneratorName.parseList(" , ") }
        let s = try settings(["GENERATORS": "aider,scaffold", "AIDER_MODEL": "a2", "MINI_SWE_AGENT_STEP_LIMIT": "7"])
        #expect(s.generators == [.aider, .scaffold])
        #expect(s.agents.aiderCommand == "aider" && s.agents.aiderModel == "a2")
        #expect(s.agents.miniSWEAgentCommand == "mini" && s.agents.miniSWEAgentStepLimit == 7)
        // The ticket carries the names as GENERATORS spells them.
        let json = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        #expect(json.contains(#""generators":["aider","scaffold"]"#), "\(json)")
        for (name, value) in [("MINI_SWE_AGENT_STEP_LIMIT", "0"), ("AIDER_CMD", "aider --yes")] {
            let e = #expect(throws: ConfigurationError.self) { try settings([name: value]) }
            #expect(e?.variable == name)
        }
    }

    @Test func aJobsAgentRunsFirstWithinAGENTS_ALLOWED() throws {
        let s = try settings(["GENERATORS": "cline,gemini,scaffold", "AGENTS_ALLOWED": "aider, mini-swe-agent"])
        #expect(s.agents.allowed == [.aider, .miniSWEAgent])
        func chain(_ agent: JSONValue?, _ settings: ChildSettings) throws -> [GeneratorName] {
            var doc: [String: JSONValue] = ["_id": "j1"]
            if let agent { doc["agent"] = agent }
            return try AgentChoice.chain(job: Job(.object(doc)), settings: settings)
        }
        #expect(try chain(nil, s) == [.cline, .gemini, .scaffold])
        #expect(try chain(.null, s) == [.cline, .gemini, .scaffold])
        #expect(try chain("aider", s) == [.aider, .gemini, .scaffold])
        #expect(try chain("mini-swe-agent", s) == [.miniSWEAgent, .gemini, .scaffold])
        for bad: JSONValue in ["cline", "scaffold", "gemini", "magic", 5, ["aider"]] {
            let e = #expect(throws: JobFailure.self) { try chain(bad, s) }
            #expect(e?.code == .invalidSpec && e?.retryable == false, "\(bad)")
        }
        // Empty AGENTS_ALLOWED (the default): no job may name one.
        let none = #expect(throws: JobFailure.self) { try chain("aider", try settings()) }
        #expect(none?.message == "the job's agent aider is not allowed here (none: AGENTS_ALLOWED is empty)")
        for bad in ["scaffold", "aider,magic"] {
            let e = #expect(throws: ConfigurationError.self) { try settings(["AGENTS_ALLOWED": bad]) }
            #expect(e?.variable == "AGENTS_ALLOWED")
        }
    }

    @Test func theModelRouteFollowsTheProvider() throws {
        func route(_ provider: String?, model: String? = "m1", route: String? = "http://127.0.0.1:3128/provider")
            throws -> Result<LiteLLMRoute, LiteLLMRoute.Unavailable> {
            LiteLLMRoute.make(agent: "aider", provider: try provider.map(ClineProvider.parse), model: model,
                              modelVariable: "AIDER_MODEL", route: route)
        }
        for p in ["openai", "openrouter", "https://llm.example/v1"] {
            #expect(try route(p) == .success(LiteLLMRoute(model: "openai/m1", apiBase: "http://127.0.0.1:3128/provider",
                                                          isOpenAI: true)))
        }
        #expect(try route("anthropic") == .success(LiteLLMRoute(model: "anthropic/m1",
                                                                apiBase: "http://127.0.0.1:3128/provider", isOpenAI: false)))
        #expect(try route("gemini") == .failure(.init("CLINE_PROVIDER=gemini: aider runs on OpenAI-compatible and Anthropic providers only")))
        #expect(try route(nil) == .failure(.init("CLINE_PROVIDER is not set: aider reaches its model only through the egress proxy's provider route")))
        #expect(try route("openai", model: nil) == .failure(.init("no model: set CLINE_MODEL or AIDER_MODEL")))
        guard case .failure(let why) = try route("openai", route: nil) else { Issue.record("a route without the proxy"); return }
        #expect(why.reason.contains("needs the egress proxy's provider route"))
    }

    @Test func aiderIsConfiguredOfflineWithThePlaceholderAndItsFilesInHome() throws {
        let aider = AiderGenerator(AgentContext(settings: try settings(), workspace: Self.workspace,
                                                providerBaseURL: "http://127.0.0.1:3128/provider",
                                                extraEnvironment: ["HTTPS_PROXY": "http://127.0.0.1:3128"], log: { _ in }))
        guard case .success(let route) = aider.route else { Issue.record("no route"); return }
        let args = aider.arguments(route)
        for flag in ["--no-check-update", "--no-analytics", "--yes-always", "--no-auto-lint", "--no-git", "--message"] {
            #expect(args.contains(flag), "\(flag)")
        }
        #expect(args.starts(with: ["--model", "openai/m1", "--openai-api-base", "http://127.0.0.1:3128/provider"]))
        #expect(args.contains(Self.workspace + "/home/.aider.chat.history.md"))
        #expect(args.contains(Self.workspace + "/home/.aider/agent-runner-models.json"))
        #expect(!args.joined().contains(ClineProvider.placeholderKey), "no key in argv, not even the placeholder")
        let env = route.agentEnvironment(WorkspaceLayout(Self.workspace), extra: ["HTTPS_PROXY": "http://127.0.0.1:3128",
                                                                                 "HOME": "/root"])
        #expect(env["OPENAI_API_KEY"] == ClineProvider.placeholderKey)
        #expect(env["HOME"] == Self.workspace + "/home" && env["XDG_CACHE_HOME"] == Self.workspace + "/home/.cache")
        #expect(env["NO_PROXY"] == "127.0.0.1" && env["HTTPS_PROXY"] == "http://127.0.0.1:3128")
        #expect(env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True" && env["PYTHONDONTWRITEBYTECODE"] == "1")
        #expect(env["MONGODB_URI"] == nil && env["CLINE_API_KEY"] == nil)
    }

    @Test func miniSWEAgentGetsItsConfigStepLimitAndTrajectoryInHome() throws {
        let mini = MiniSWEAgentGenerator(AgentContext(settings: try settings(["MINI_SWE_AGENT_STEP_LIMIT": "12"]),
                                                      workspace: Self.workspace,
                                                      providerBaseURL: "http://127.0.0.1:3128/provider", log: { _ in }))
        guard case .success(let route) = mini.route else { Issue.record("no route"); return }
        #expect(mini.arguments.starts(with: ["-y", "--exit-immediately", "-c", "mini.yaml", "-c",
                                             Self.workspace + "/home/.config/mini-swe-agent/agent-runner.yaml",
                                             "-o", Self.workspace + "/home/mini-swe-agent.traj.json", "-t"]))
        let config = mini.config(route)
        #expect(config["agent"]?["step_limit"]?.intValue == 12 && config["agent"]?["mode"]?.stringValue == "yolo")
        #expect(config["model"]?["model_kwargs"]?["api_base"]?.stringValue == "http://127.0.0.1:3128/provider")
        #expect(config["environment"]?["cwd"]?.stringValue == Self.workspace + "/repo")
        let env = mini.environment(route)
        #expect(env["MSWEA_CONFIGURED"] == "true" && env["OPENAI_API_KEY"] == ClineProvider.placeholderKey)
    }

    @Test func aiderOutputBecomesLogLinesAndUsage() {
        var out = AiderOutput()
        let lines = ["Aider v0.86.2", "I will write the README.", "README.md", "```", "# Tiny", "```",
                     "Tokens: 1.2k sent, 64 cache write, 800 cache hit, 210 received. Cost: $0.01 message, $0.01 session.",
                     "Applied edit to README.md",
                     "Tokens: 900 sent, 3 received. Cost: $0.0040 message, $0.014 session.",
                     "litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."]
        let logged = lines.compactMap { out.readable($0, isErr: false) }
        #expect(logged == ["aider: Aider v0.86.2", "aider: Tokens: 1.2k sent, 64 cache write, 800 cache hit, 210 received. "
                           + "Cost: $0.01 message, $0.01 session.", "aider: edited README.md",
                           "aider: Tokens: 900 sent, 3 received. Cost: $0.0040 message, $0.014 session.",
                           "aider error: litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."])
        #expect(out.skipped == 5 && out.edits == 1)
        #expect(out.usage.inputTokens == 2100 && out.usage.outputTokens == 213)
        #expect(out.usage.cacheReadTokens == 800 && out.usage.cacheWriteTokens == 64)
        #expect(out.usage.cost == 0.014 && out.usage.iterations == 2 && out.usage.format == "aider")
        #expect(out.lastError?.hasPrefix("litellm.InternalServerError") == true)
    }

    /// aider's output is the agent's: token counts too large for an Int are
    /// not counts, and sums of many stay at Int.max instead of trapping.
    @Test func aiderTokenReportsCannotOverflow() {
        var out = AiderOutput()
        _ = out.readable("Tokens: 9999999999999M sent, 1 received.", isErr: false)
        #expect(out.usage.inputTokens == nil && out.usage.outputTokens == 1)
        for _ in 0..<12_000 { _ = out.readable("Tokens: 900000000000000 sent.", isErr: false) }
        #expect(out.usage.inputTokens == Int.max && out.usage.iterations == 12_001)
    }

    @Test func aMiniTrajectoryBecomesStepsExitCodesAndUsage() throws {
        let dir = TestEnv.tempDir("traj")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let usage: JSONValue = ["prompt_tokens": 900, "completion_tokens": 210, "prompt_tokens_details": ["cached_tokens": 512]]
        let trajectory: JSONValue = [
            "info": ["exit_status": "Submitted", "model_stats": ["api_calls": 2, "instance_cost": .double(0)]],
            "messages": [
                ["role": "system", "content": "You are…"], ["role": "user", "content": "Please solve…"],
                ["role": "assistant", "content": "Step 1.\nWriting.",
                 "extra": ["actions": [["command": "echo hi > README.md"]], "response": ["usage": usage]]],
                ["role": "tool", "content": "{…}",
                 "extra": ["returncode": 2, "exception_info": "", "raw_output": "sh: 1: cannot create /x: Permission denied\nmore"]],
                ["role": "assistant", "content": nil,
                 "extra": ["actions": [["command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"]], "response": ["usage": usage]]],
                ["role": "tool", "extra": ["returncode": -1, "exception_info": "action was not executed"]],
                ["role": "exit", "content": "", "extra": ["exit_status": "Submitted"]],
            ],
        ]
        try trajectory.jsonString.write(toFile: dir + "/t.json", atomically: true, encoding: .utf8)
        let t = MiniTrajectory.read(dir + "/t.json")
        #expect(t.problem == nil)
        #expect(t.lines == ["mini-swe-agent step 1: Step 1. ⏎ Writing.", "mini-swe-agent step 1: $ echo hi > README.md",
                            "mini-swe-agent step 1: exit 2: sh: 1: cannot create /x: Permission denied",
                            "mini-swe-agent step 2: $ echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT",
                            "mini-swe-agent step 2: exit -1 (action was not executed)", "mini-swe-agent: finished: Submitted"])
        #expect(t.usage.inputTokens == 1800 && t.usage.outputTokens == 420 && t.usage.cacheReadTokens == 1024)
        #expect(t.usage.iterations == 2 && t.usage.finishReason == "Submitted" && t.usage.cost == nil)
        // The agent's output is untrusted: a missing file, a link, or garbage gives a reason, never a throw.
        #expect(MiniTrajectory.read(dir + "/none.json").problem == "it wrote no trajectory")
        symlink(dir + "/t.json", dir + "/link.json")
        #expect(MiniTrajectory.read(dir + "/link.json").problem == "it wrote no trajectory")
        try "not json".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        #expect(MiniTrajectory.read(dir + "/bad.json").problem == "its trajectory is not JSON")
        // A FIFO is not waited on, a link to an endless file not followed.
        #expect(mkfifo(dir + "/fifo.json", 0o600) == 0)
        // Were the read to wait on the FIFO, a writer would end its wait after
        // 10 s (an open for writing that succeeds only while a reader waits):
        // the test then fails on what it read, rather than hang.
        let fifo = dir + "/fifo.json"
        let unblock = DispatchWorkItem {
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { _ = write(fd, "x", 1); close(fd) }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + 10, execute: unblock)
        #expect(MiniTrajectory.read(fifo).problem == "it wrote no trajectory")
        unblock.cancel()
        try FileManager.default.createSymbolicLink(atPath: dir + "/zero.json", withDestinationPath: "/dev/zero")
        #expect(MiniTrajectory.read(dir + "/zero.json").problem == "it wrote no trajectory")
        #expect(truncate(dir + "/bad.json", off_t(MiniTrajectory.maxBytes + 1)) == 0)
        #expect(MiniTrajectory.read(dir + "/bad.json").problem == "its trajectory is over \(MiniTrajectory.maxBytes) bytes")
    }

    /// A virtualenv is readable whole (its lib/ holds the packages); another
    /// command only its folder.
    @Test func theSandboxReadsAnAgentsWholeVirtualenv() throws {
        let dir = TestEnv.tempDir("venv")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for sub in ["/venv/bin", "/plain/bin"] { try FileManager.default.createDirectory(atPath: dir + sub, withIntermediateDirectories: true) }
        try "home = /usr/bin\n".write(toFile: dir + "/venv/pyvenv.cfg", atomically: true, encoding: .utf8)
        for exe in ["/venv/bin/aider", "/plain/bin/tool"] {
            try "#!/bin/sh\n".write(toFile: dir + exe, atomically: true, encoding: .utf8)
            chmod(dir + exe, 0o755)
        }
        symlink(dir + "/venv/bin/aider", dir + "/plain/bin/aider")
        #expect(AgentInstall.readablePaths(dir + "/venv/bin/aider") == [dir + "/venv"])
        #expect(AgentInstall.readablePaths(dir + "/plain/bin/tool") == [dir + "/plain/bin"])
        #expect(AgentInstall.readablePaths(dir + "/plain/bin/aider") == [dir + "/plain/bin", dir + "/venv"])
        #expect(AgentInstall.readablePaths(dir + "/nothing") == [])
    }
}
