import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// The real agents, aider and mini-swe-agent (installed by scripts/bootstrap.sh
/// into .venv-agents/), run end to end through the supervisor in the real
/// sandbox (namespaces, Landlock, seccomp, the job's egress proxy) against a
/// scripted OpenAI-compatible server on loopback (Tests/Fixtures/fake_provider.py):
/// the job is done with the agent's files on the remote, the server saw the
/// operator's key on every call while the agent held only the placeholder,
/// and no agent process is left.
@Suite(.serialized) struct AgentEndToEndTests {
    static let realKey = "sk-real-agent-key-" + "0123456789abcdefghij"

    /// An agent's executable in its bootstrap virtualenv.
    static func installed(_ venv: String, _ executable: String) throws -> String {
        let path = TestEnv.repoRoot + "/.venv-agents/\(venv)/bin/\(executable)"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw AgentMissing(path: path)
        }
        return path
    }

    struct AgentMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) is missing: run scripts/bootstrap.sh (make test runs it)" }
    }

    struct Run {
        var job: JSONValue
        var requests: [JSONValue]
        var workspace: String
        var stderr: String
        var logs: [String] { job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
    }

    /// One job with `generator` alone in the chain against the fake provider's `scenario`.
    func run(_ h: Harness, generator: String, env: [String: String], scenario: String,
             providerArgs: [String] = []) async throws -> Run {
        try await h.makeRemote()
        let requests = h.root + "/provider.jsonl"
        let provider = try await FixtureServer("fake_provider.py", [scenario, requests] + providerArgs)
        defer { provider.stop() }
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: [
            "GENERATORS": generator, "JOB_MAX_ATTEMPTS": "1",
            "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_MODEL": "test-model-1",
            "CLINE_API_KEY": Self.realKey,
        ].merging(env) { $1 }, timeout: 600)
        #expect(r.status == 0, "\(r.stderr)")
        return Run(job: try await h.job(id), requests: try FixtureServer.jsonLines(requests),
                   workspace: h.workspace(id), stderr: r.stderr)
    }

    /// What holds for every agent: the real key only at the provider, on every
    /// call; the files on the remote; no process of the job left.
    func expectPublishedWithTheKeyInjected(_ h: Harness, _ run: Run, files: [String]) async throws {
        #expect(run.job["status"]?.stringValue == "done", "\(run.logs)")
        #expect(!run.requests.isEmpty, "the agent never called its model")
        for request in run.requests {
            #expect(request["path"]?.stringValue == "/v1/chat/completions", "\(request)")
            #expect(request.headerValues("authorization") == ["Bearer " + Self.realKey], "\(request)")
            #expect(request.allHeaderValues.contains { $0.contains(ClineProvider.placeholderKey) } == false)
        }
        #expect(!run.job.jsonString.contains(Self.realKey))
        #expect(!run.stderr.contains(Self.realKey))
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        let names = tree.split(separator: "\n").map(String.init)
        for f in files { #expect(names.contains(f), "\(names)") }
        for f in names {
            #expect(!(try await Git.run(["-C", h.remote, "show", "main:\(f)"])).contains(Self.realKey))
        }
        // Every file the agent left in its workspace (home/, caches, histories, trajectory).
        if let walker = FileManager.default.enumerator(atPath: run.workspace) {
            for case let rel as String in walker {
                if let data = FileManager.default.contents(atPath: run.workspace + "/" + rel) {
                    #expect(!String(decoding: data, as: UTF8.self).contains(Self.realKey), "\(rel)")
                }
            }
        }
        // Its run time, start-up and peak memory, for the log and `make bench`.
        #expect(run.logs.contains { $0.contains(": ran ") && $0.contains(" s (first output after ") && $0.hasSuffix(" MB") },
                "\(run.logs)")
        #expect((run.job["metadata"]?["agent"]?["durationMs"]?.intValue ?? 0) > 0)
        // Every agent process named its workspace in its argv: none is left.
        #expect(await eventually(5) { Containment.processes(with: run.workspace).isEmpty })
    }

    @Test func aiderWritesTheTreeThroughTheProxyAndItIsPushed() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let aider = try Self.installed("aider", "aider")
        let run = try await run(h, generator: "aider", env: ["AIDER_CMD": aider], scenario: "aider")
        try await expectPublishedWithTheKeyInjected(h, run, files: ["README.md", "src/main.py"])
        let meta = run.job["metadata"]
        #expect(meta?["generator"]?.stringValue == "aider")
        #expect(meta?["agent"]?["format"]?.stringValue == "aider")
        #expect(meta?["agent"]?["model"]?.stringValue == "openai/test-model-1")
        #expect(meta?["agent"]?["inputTokens"]?.intValue == 900 && meta?["agent"]?["outputTokens"]?.intValue == 210)
        #expect(run.logs.contains("aider: edited README.md") && run.logs.contains("aider: edited src/main.py"), "\(run.logs)")
        // The proxy metered aider's call from the answer, as the agent itself reported it.
        #expect(run.logs.contains { $0.hasPrefix("model call: provider: POST /chat/completions: test-model-1 -> 200, tokens in 388 out 210") },
                "\(run.logs)")
        #expect(meta?["usage"]?["requests"]?.intValue == 1 && meta?["usage"]?["outputTokens"]?.intValue == 210, "\(meta?.jsonString ?? "")")
        // Its own files stayed in home/, none on the remote.
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(!tree.contains(".aider"), "\(tree)")
        #expect(FileManager.default.fileExists(atPath: run.workspace + "/home/.aider.chat.history.md"))
    }

    /// aider exits 0 when its model answers without an edit (and when its API
    /// cannot be reached): that is `generation_failed`, and the chain moves on.
    @Test func aiderThatWritesNothingFailsAndTheNextGeneratorRuns() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let aider = try Self.installed("aider", "aider")
        let run = try await run(h, generator: "aider,scaffold", env: ["AIDER_CMD": aider], scenario: "ok")
        #expect(run.job["status"]?.stringValue == "done", "\(run.logs)")
        #expect(run.job["metadata"]?["generator"]?.stringValue == "scaffold")
        #expect(run.logs.contains("generator aider failed: aider: exited 0 without writing anything; trying the next one"),
                "\(run.logs)")
        #expect(!run.requests.isEmpty, "aider asked its model")
    }

    /// Its commands run in the agent's sandbox: the one that writes outside
    /// the workspace is refused (a folder the test's own user can write), and
    /// the job still finishes. The environment its commands saw is on the remote.
    @Test func miniSWEAgentRunsItsCommandsInTheSandboxAndTheTreeIsPushed() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let mini = try Self.installed("mini-swe-agent", "mini")
        let outside = TestEnv.repoRoot + "/.build/agent-escape-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let run = try await run(h, generator: "mini-swe-agent", env: ["MINI_SWE_AGENT_CMD": mini],
                                scenario: "mini", providerArgs: [outside])
        try await expectPublishedWithTheKeyInjected(h, run, files: ["README.md", "src/main.py", "agent-env.txt"])
        #expect(!FileManager.default.fileExists(atPath: outside), "a command wrote outside the workspace")
        let logs = run.logs
        #expect(logs.contains("mini-swe-agent step 2: $ echo escaped > " + outside), "\(logs)")
        // Refused by Landlock (the folder exists and root may write it outside the sandbox).
        #expect(logs.contains { $0.hasPrefix("mini-swe-agent step 2: exit ") && $0.hasSuffix("Permission denied") }, "\(logs)")
        #expect(logs.contains("mini-swe-agent: finished: Submitted"), "\(logs)")
        let meta = run.job["metadata"]
        #expect(meta?["generator"]?.stringValue == "mini-swe-agent")
        #expect(meta?["agent"]?["format"]?.stringValue == "mini-swe-agent")
        #expect(meta?["agent"]?["iterations"]?.intValue == 3)
        #expect(meta?["agent"]?["inputTokens"]?.intValue == 2700)
        // The agent's own environment, as its commands saw it: the placeholder, no key, no database.
        let env = try await Git.run(["-C", h.remote, "show", "main:agent-env.txt"])
        #expect(env.contains("OPENAI_API_KEY=" + ClineProvider.placeholderKey + "\n"), "\(env)")
        #expect(!env.contains(Self.realKey) && !env.contains("MONGODB_URI"), "\(env)")
        #expect(env.contains("HOME=" + run.workspace + "/home\n"), "\(env)")
        // Its trajectory stayed in home/.
        #expect(FileManager.default.fileExists(atPath: run.workspace + "/home/mini-swe-agent.traj.json"))
    }

    /// A job names its agent (`agent`, within AGENTS_ALLOWED): it runs
    /// instead of GENERATORS' agents, with the egress proxy the chain alone
    /// would not have started (GENERATORS=scaffold), and `agent-runner jobs`
    /// shows it. An agent outside AGENTS_ALLOWED fails `invalid_spec`.
    @Test func aJobNamesItsAgentWithinAGENTS_ALLOWED() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let mini = try Self.installed("mini-swe-agent", "mini")
        let provider = try await FixtureServer("fake_provider.py", ["mini", h.root + "/provider.jsonl", h.root + "/outside"])
        defer { provider.stop() }
        let chosen = try await h.seed(tinySpec)
        let refused = try await h.seed(tinySpec, project: "second")
        for (id, agent) in [(chosen, "mini-swe-agent"), (refused, "cline")] {
            _ = try await h.store.pool.run("jobs") { coll in
                try CollectionOps.update(coll, filter: ["_id": .string(id)], update: ["$set": ["agent": .string(agent)]])
            }
        }
        let env = ["GENERATORS": "scaffold", "AGENTS_ALLOWED": "aider,mini-swe-agent", "JOB_MAX_ATTEMPTS": "1",
                   "MINI_SWE_AGENT_CMD": mini, "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1",
                   "CLINE_MODEL": "test-model-1", "CLINE_API_KEY": Self.realKey]
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: env, timeout: 600)
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(chosen)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(job["metadata"]?["generator"]?.stringValue == "mini-swe-agent")
        let failed = try await h.job(refused)
        #expect(failed["status"]?.stringValue == "failed")
        #expect(failed["error"]?["code"]?.stringValue == "invalid_spec")
        #expect(failed["error"]?["message"]?.stringValue
                == "the job's agent cline is not allowed here (AGENTS_ALLOWED=aider,mini-swe-agent)", "\(failed.jsonString)")
        let list = try await h.agentRunner(["jobs"], env: env)
        #expect(list.stdout.split(separator: "\n").contains { $0.hasPrefix(chosen) && $0.contains(" mini-swe-agent ") },
                "\(list.stdout)")
    }
}
