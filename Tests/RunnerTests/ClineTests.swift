import Foundation
import ChildGeneration
import JobStore
import RunnerCore
import Testing

/// Fake `cline` executables run by the real child, inside the real sandbox.
@Suite(.serialized) struct ClineTests: ClineFixtures {
    @Test func successfulClineRunIsCommittedWithReadableLogs() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo '{"type":"say","say":"text","text":"Planning the build"}'
        printf '# Built by fake cline\\n' > README.md
        mkdir -p api && echo 'console.log(1)' > api/index.js
        printf '%s\\n' "$@" > args.txt
        env | sort > env.txt
        echo "plain progress line"
        echo '{"type":"say","say":"completion_result","text":"All done"}'
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        #expect(job["metadata"]?["generator"]?.stringValue == "cline")
        let lines = logs(job)
        #expect(lines.contains("cline: Planning the build"))
        #expect(lines.contains("cline: completed: All done"))
        #expect(lines.contains("cline: plain progress line"))
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(tree.contains("api/index.js"))
        let args = try await Git.run(["-C", h.remote, "show", "main:args.txt"]).split(separator: "\n").map(String.init)
        let repo = h.workspace(id) + "/repo"
        #expect(Array(args.prefix(6)) == ["-y", "--json", "-c", repo, "-t", "1170"])
        #expect(args.last?.contains("instructions.md") == true)
        let env = try await Git.run(["-C", h.remote, "show", "main:env.txt"])
        #expect(env.contains("HOME=\(h.workspace(id))/home"))
        #expect(!env.contains("MONGODB_URI") && !env.contains("ghp_") && !env.contains("NOTIFY_SOCKET"))
    }

    @Test func theAgentsUsageReachesTheJobDocument() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo '{"ts":"2026-01-01T00:00:00Z","type":"agent_event","event":{"type":"content_end","contentType":"text","text":"Writing"}}'
        printf '# Built\\n' > README.md && echo 1 > main.py
        echo '{"ts":"2026-01-01T00:00:01Z","type":"run_result","finishReason":"completed","iterations":3,"usage":{"inputTokens":42,"outputTokens":7,"cacheReadTokens":5,"totalCost":0.125},"durationMs":900,"text":"ok","model":{"id":"claude-test","provider":"anthropic"}}'
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let agent = job["metadata"]?["agent"]
        #expect(agent?["model"]?.stringValue == "claude-test" && agent?["provider"]?.stringValue == "anthropic")
        #expect(agent?["inputTokens"]?.intValue == 42 && agent?["outputTokens"]?.intValue == 7)
        #expect(agent?["cacheReadTokens"]?.intValue == 5 && agent?["iterations"]?.intValue == 3)
        #expect(agent?["format"]?.stringValue == "cline-3" && agent?["finishReason"]?.stringValue == "completed")
        #expect(logs(job).contains("cline: Writing"))
        #expect(logs(job).contains("cline usage: model claude-test (anthropic), 42 input + 7 output tokens, 5 cache read, $0.1250, 3 iterations"))
    }

    @Test func seedTemplateFormWorks() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        [ "$1" = generate ] && [ "$2" = --repo ] && [ "$4" = --instructions ] || exit 9
        cp "$5" README.md && echo ok > marker.txt
        """)
        let id = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: env(cline, ["CLINE_ARGS": "generate --repo {repo} --instructions {instructions}"]))
        #expect(run.status == 0)
        let job = try await h.job(id)
        #expect(job["metadata"]?["generator"]?.stringValue == "cline", "\(logs(job))")
        #expect(try await Git.run(["-C", h.remote, "show", "main:README.md"]).contains("# Build: Tiny"))
    }

    @Test func failingClineFallsBackAndTheLogSaysWhy() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo partial > leftover.txt
        echo '{"type":"error","message":"model overloaded"}'
        exit 1
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["generator"]?.stringValue == "scaffold")
        let lines = logs(job)
        #expect(lines.contains("cline error: model overloaded"))
        #expect(lines.contains { $0.contains("cline: exited with code 1") })
        #expect(lines.contains { $0.contains("gemini skipped: GOOGLE_GEMINI_API_KEY is not set") })
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(!tree.contains("leftover.txt"), "a failed generator's files must not be committed")
    }

    @Test func hangingClineIsStoppedAtItsTimeout() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, "sleep 300 &\nwait\n")
        let id = try await h.seed(tinySpec)
        let started = Date()
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline, ["CLINE_TIMEOUT_SECONDS": "2"])).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["generator"]?.stringValue == "scaffold")
        #expect(logs(job).contains { $0.contains("timed out after CLINE_TIMEOUT_SECONDS=2") })
        #expect(Date().timeIntervalSince(started) < 60)
    }

    @Test func hostileClineOutputIsRejectedAndCannotEscape() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo hi > README.md
        ln -s /etc/passwd leak
        mkfifo pipe
        echo owned > \(h.root)/escaped.txt 2>/dev/null
        cat \(h.root)/secret.txt > stolen.txt 2>/dev/null
        exit 0
        """)
        try "top secret".write(toFile: h.root + "/secret.txt", atomically: true, encoding: .utf8)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "unsafe_output")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("leak (symlink)") && message.contains("pipe (special file"))
        #expect(!FileManager.default.fileExists(atPath: h.root + "/escaped.txt"), "Landlock must stop writes outside")
        let stolen = (try? String(contentsOfFile: h.workspace(id) + "/repo/stolen.txt", encoding: .utf8)) ?? ""
        #expect(!stolen.contains("top secret"), "Landlock must stop reads outside")
    }

    @Test func nodeRunsConfinedAndCannotReadTheRunnersEnvOtherJobsOrOtherProcesses() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let shared = h.root + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        try "visible-marker\n".write(toFile: shared + "/visible.txt", atomically: true, encoding: .utf8)
        try "JOB_LOG_CAP=1000\n# envfile-secret-marker\n".write(toFile: shared + "/runner.env", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: h.workdir + "/otherjob/input", withIntermediateDirectories: true)
        try "otherjob-secret-marker".write(toFile: h.workdir + "/otherjob/input/spec.json", atomically: true, encoding: .utf8)
        let cline = try fakeCline(h, """
        /usr/bin/node -e "require('fs').writeFileSync('README.md', '# written by node ' + process.version + '\\n')"
        cat \(shared)/visible.txt > visible.txt 2>&1
        cat \(shared)/runner.env > env.txt 2>&1
        cat /proc/1/environ > environ.txt 2>&1
        cat \(h.workdir)/otherjob/input/spec.json > other.txt 2>&1
        ls \(h.workdir) > ls.txt 2>&1
        exit 0
        """)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle", "--env-file", shared + "/runner.env"],
                                        env: env(cline, ["SANDBOX_READ_PATHS": shared]))
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["metadata"]?["generator"]?.stringValue == "cline", "\(logs(job))")
        func committed(_ file: String) async throws -> String { try await Git.run(["-C", h.remote, "show", "main:\(file)"]) }
        #expect(try await committed("README.md").hasPrefix("# written by node v"), "Node must run under the sandbox")
        #expect(try await committed("visible.txt") == "visible-marker", "SANDBOX_READ_PATHS is readable")
        #expect(!(try await committed("env.txt")).contains("envfile-secret-marker"), "the runner's env file is hidden")
        #expect((try await committed("environ.txt")).contains("Permission denied"))
        #expect(!(try await committed("other.txt")).contains("otherjob-secret-marker"), "other jobs are out of reach")
        #expect(!(try await committed("ls.txt")).contains("otherjob"))
    }

    @Test func bothOutputFormatsBecomeReadableLines() {
        var out = ClineOutput()
        #expect(out.readable(#"{"type":"say","say":"tool","text":"write a.txt"}"#, isErr: false) == "cline tool: write a.txt")
        #expect(out.readable("not json", isErr: false) == "cline: not json")
        #expect(out.readable("oops", isErr: true) == "cline stderr: oops")
        #expect(out.readable(#"{"type":"ask","ask":"followup","text":"{\"question\":\"which db?\",\"options\":[]}"}"#,
                             isErr: false) == "cline asks: which db?")
        #expect(out.readable(#"{"type":"say","say":"text","partial":true,"text":"Plan"}"#, isErr: false) == nil)
        #expect(out.readable(#"{"ts":2,"type":"say","say":"api_req_started","text":"{\"tokensIn\":10,\"tokensOut\":4,\"cost\":0.5}"}"#,
                             isErr: false) == nil)
        #expect(out.readable(#"{"ts":2,"type":"say","say":"api_req_started","text":"{\"tokensIn\":12,\"tokensOut\":5,\"cost\":0.25}"}"#,
                             isErr: false) == nil, "the same message re-sent with its final counts replaces the first")
        #expect(out.usage.inputTokens == 12 && out.usage.outputTokens == 5 && out.usage.cost == 0.25 && out.usage.iterations == 1)
        #expect(out.readable(#"{"type":"say","say":"text","text":"line one\n\nline two"}"#, isErr: false) == "cline: line one ⏎ line two")
        #expect(out.format == "cline-2" && out.errors.isEmpty)

        var v3 = ClineOutput()
        #expect(v3.readable(#"{"ts":"t","type":"agent_event","event":{"type":"content_start","contentType":"text","text":"I"}}"#,
                            isErr: false) == nil, "streamed chunks are not logged one by one")
        #expect(v3.readable(#"{"ts":"t","type":"agent_event","event":{"type":"error","error":{"message":"rate limited"},"recoverable":true}}"#,
                            isErr: false) == "cline error (recoverable): rate limited")
        #expect(v3.errors.isEmpty, "a recoverable error does not fail the run")
        #expect(v3.readable(#"{"ts":"t","type":"error","message":"Not authenticated"}"#, isErr: true) == "cline error: Not authenticated")
        #expect(v3.readable(#"{"ts":"t","type":"run_result","finishReason":"mistake_limit","usage":{"inputTokens":5,"outputTokens":1},"#
                            + #""aggregateUsage":{"inputTokens":50,"outputTokens":10,"totalCost":0.01},"model":{"id":"m","provider":"p"}}"#,
                            isErr: false) == "cline: run finished (mistake_limit)")
        #expect(v3.usage.inputTokens == 50 && v3.usage.cost == 0.01 && v3.usage.model == "m", "aggregate usage includes sub-agents")
        #expect(v3.errors == ["Not authenticated"] && v3.format == "cline-3")
        // The agent's errors are kept without end only in the log: the newest few are kept.
        for i in 0..<50 { _ = v3.readable(#"{"ts":"t","type":"error","message":"e\#(i)"}"#, isErr: true) }
        #expect(v3.errors == (42..<50).map { "e\($0)" })
    }

    @Test func theConfigurationHasEachCLIsLayoutAndOnlyThePlaceholder() throws {
        let route = "http://127.0.0.1:3128/provider/"
        let anthropic = ClineConfig(provider: try ClineProvider.parse("anthropic"), model: "claude-x", baseURL: route)
        #expect(anthropic.baseURL == "http://127.0.0.1:3128/provider")
        let p = anthropic.providersJSON()
        #expect(p["version"]?.intValue == 1 && p["lastUsedProvider"]?.stringValue == "anthropic")
        let s = p["providers"]?["anthropic"]?["settings"]
        #expect(s?["provider"]?.stringValue == "anthropic" && s?["model"]?.stringValue == "claude-x")
        #expect(s?["apiKey"]?.stringValue == ClineProvider.placeholderKey)
        #expect(s?["baseUrl"]?.stringValue == "http://127.0.0.1:3128/provider/v1")
        #expect(p["providers"]?["anthropic"]?["tokenSource"]?.stringValue == "manual")
        #expect(anthropic.globalStateJSON["anthropicBaseUrl"]?.stringValue == "http://127.0.0.1:3128/provider")
        #expect(anthropic.globalStateJSON["actModeApiModelId"]?.stringValue == "claude-x")
        #expect(anthropic.globalStateJSON["telemetrySetting"]?.stringValue == "disabled")
        #expect(anthropic.secretsJSON["apiKey"]?.stringValue == ClineProvider.placeholderKey)

        let openrouter = ClineConfig(provider: try ClineProvider.parse("openrouter"), model: nil, baseURL: route)
        #expect(openrouter.providerID == "openrouter" && openrouter.providerIDv2 == "openai")
        #expect(openrouter.providersJSON()["providers"]?["openrouter"]?["settings"]?["model"] == nil)
        #expect(openrouter.globalStateJSON["openAiBaseUrl"]?.stringValue == "http://127.0.0.1:3128/provider")
        let gemini = ClineConfig(provider: try ClineProvider.parse("gemini"), model: "g", baseURL: route)
        #expect(gemini.baseURLv3 == "http://127.0.0.1:3128/provider/v1beta")
        #expect(gemini.callPath(v3: true, model: "g") == "/v1beta/models/g:streamGenerateContent")
        #expect(ClineConfig(provider: try ClineProvider.parse("openai"), model: "o", baseURL: route).providerID == "openai-native")

        let dir = TestEnv.tempDir("clinecfg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let written = try anthropic.write(clineDir: dir + "/.cline")
        #expect(written.map { String($0.dropFirst(dir.count)) }
            == ["/.cline/data/settings/providers.json", "/.cline/data/globalState.json", "/.cline/data/secrets.json"])
        for path in written {
            let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o600, "\(path)")
            #expect(try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path))).objectValue != nil)
        }
        try anthropic.write(clineDir: dir + "/.cline") // a second job attempt rewrites it
    }
}
