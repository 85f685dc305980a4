import Foundation
import JobStore
import RunnerCore
import Testing

/// The job's event stream through the supervisor into `job_events`: ordered
/// and numbered, redacted, capped at JOB_EVENTS_MAX with its marker, kept
/// by the TTL index the supervisor creates (fake `cline` scripts in the real
/// child, the real supervisor, the test database).
@Suite(.serialized) struct JobEventStoreTests: ClineFixtures {
    /// A token-shaped secret the agent prints (the redactor's GitHub pattern).
    static let leaked = "ghp_LEAKEDleakedLEAKEDleaked0123456789"

    func stored(_ h: Harness, _ id: String) async throws -> [JSONValue] {
        try await h.store.events(jobId: id, after: 0, limit: 100_000)
    }

    @Test func aJobsStreamIsStoredInOrderRedactedAndEndsWithItsOutcome() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        // The agent waits for the test's word (a file in its tree, which it
        // removes: the sandbox shows it nothing else of the test's): the
        // follower is seen printing the live stream before the job can end.
        let cline = try fakeCline(h, """
        while [ ! -f .release ]; do sleep 0.1; done; rm -f .release
        echo '{"type":"agent_event","event":{"type":"iteration_start","iteration":1}}'
        echo '{"type":"agent_event","event":{"type":"content_end","contentType":"text","text":"my token is \(Self.leaked)"}}'
        echo '{"type":"agent_event","event":{"type":"content_start","contentType":"tool","toolName":"run_commands","toolCallId":"c1","input":{"commands":["curl -H \\"Authorization: Bearer \(Self.leaked)\\" https://example.com"]}}}'
        echo '{"type":"agent_event","event":{"type":"content_end","contentType":"tool","toolName":"run_commands","toolCallId":"c1","error":"exit code 6"}}'
        printf '# Built\\n' > README.md && echo 1 > main.py
        echo '{"type":"run_result","finishReason":"completed","iterations":1,"usage":{"inputTokens":4,"outputTokens":2},"text":"ok","model":{"id":"m","provider":"p"}}'
        """)
        let id = try await h.seed(tinySpec)
        // `agent-runner events --follow`, started while the job is pending, prints the stream until the job ends.
        let live = h.root + "/followed.txt"
        async let follower = runProcess("/bin/bash", ["-c", #""$0" events "$1" --follow | tee "$2"; exit "${PIPESTATUS[0]}""#,
                                                    TestEnv.binDir + "/agent-runner", id, live],
                                        env: h.environment(), cwd: h.root)
        async let run = h.agentRunner(["run", "--exit-when-idle"], env: env(cline))
        let followedLive = await eventually(120) {
            ((try? String(contentsOfFile: live, encoding: .utf8)) ?? "").contains("stage           claimed")
        }
        #expect(followedLive, "the follower printed the claim while the agent waited")
        FileManager.default.createFile(atPath: h.workspace(id) + "/repo/.release", contents: nil)
        let r = try await run
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let events = try await stored(h, id)
        let followed = try await follower
        #expect(followed.status == 0, "\(followed.stderr)")
        let printed = followed.stdout.split(separator: "\n")
        #expect(printed.count == events.count, "\(followed.stdout)")
        #expect(printed.last?.contains("stage           finished · done") == true, "\(followed.stdout)")
        #expect(printed.contains { $0.contains("message         assistant · my token is [REDACTED]") }, "\(followed.stdout)")
        let commandsJSON = try await h.agentRunner(["events", id, "--json", "--kind", "command"])
        let commandLines = commandsJSON.stdout.split(separator: "\n").map { try? JSONValue.parse(String($0)) }
        #expect(commandLines.count == 1 && commandLines.first??["data"]?["exitCode"]?.intValue == 6
            && commandLines.first??["jobId"]?.stringValue == id, "\(commandsJSON.stdout)")
        #expect(try await h.agentRunner(["events", id, "--kind", "nonsense"]).status != 0)
        // Numbered 1...n without a gap, in order, and the job records where it stopped.
        let seqs = events.compactMap { $0["seq"]?.intValue }
        #expect(seqs == Array(1...Int64(events.count)), "\(seqs)")
        #expect(job["eventSeq"]?.intValue == Int64(events.count))
        #expect(events.allSatisfy { $0["v"]?.intValue == 1 && $0["attempt"]?.intValue == 1 && $0["at"]?.dateValue != nil })
        let kinds = events.compactMap { $0["kind"]?.stringValue }
        #expect(kinds.first == "stage" && events.first?["data"]?["stage"] == "claimed", "\(kinds)")
        #expect(events.last?["kind"] == "stage" && events.last?["data"]?["stage"] == "finished"
            && events.last?["data"]?["status"] == "done", "\(String(describing: events.last))")
        let stages = events.filter { $0["kind"] == "stage" }.compactMap { $0["data"]?["stage"]?.stringValue }
        #expect(stages == ["claimed", "preparing", "generating", "validating", "committing", "pushing", "finished"], "\(stages)")
        // The agent's events, its secret redacted before anything was stored.
        let text = events.map(\.jsonString).joined(separator: "\n")
        #expect(!text.contains("LEAKED"), "a secret reached job_events")
        #expect(events.contains { $0["kind"] == "message" && $0["data"]?["text"] == "my token is [REDACTED]" }, "\(text)")
        #expect(events.contains { $0["kind"] == "command" && $0["data"]?["exitCode"]?.intValue == 6
            && $0["data"]?["command"]?.stringValue?.contains("[REDACTED]") == true }, "\(text)")
        // The push's commit, and what it changed.
        let commit = job["metadata"]?["commitSha"]?.stringValue
        #expect(events.contains { $0["kind"] == "publish" && $0["data"]?["step"] == "push" && $0["data"]?["commit"]?.stringValue == commit })
        let changes = events.first { $0["kind"] == "changes" }
        #expect(changes?["data"]?["commit"]?.stringValue == commit)
        #expect(Set(changes?["data"]?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } ?? []) == ["README.md", "main.py"])
        #expect(events.contains { $0["kind"] == "diff" && $0["data"]?["path"] == "main.py" && $0["data"]?["text"]?.stringValue?.contains("+1") == true })
        // The filter by kind and the page after a sequence number.
        let commands = try await h.store.events(jobId: id, after: 0, kinds: ["command"], limit: 10)
        #expect(commands.count == 1)
        let tail = try await h.store.events(jobId: id, after: Int(seqs[seqs.count - 3]), limit: 10)
        #expect(tail.compactMap { $0["seq"]?.intValue } == Array(seqs.suffix(2)))
    }

    @Test func theStreamIsCappedWithAMarkerAndTheTTLIndexHolds() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        // 300 messages, far more than the cap.
        let cline = try fakeCline(h, """
        i=0; while [ $i -lt 300 ]; do
          echo '{"type":"agent_event","event":{"type":"content_end","contentType":"text","text":"step '$i'"}}'
          i=$((i+1)); done
        printf '# Built\\n' > README.md && echo 1 > main.py
        """)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline, ["JOB_EVENTS_MAX": "50", "JOB_EVENTS_TTL_DAYS": "7"]))
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let events = try await stored(h, id)
        #expect(events.count == 50, "\(events.count) events stored")
        #expect(events.compactMap { $0["seq"]?.intValue } == Array(1...50))
        #expect(events.last?["kind"] == "truncated" && events.last?["data"]?["max"]?.intValue == 50, "\(String(describing: events.last))")
        #expect(events.dropLast().allSatisfy { $0["kind"] != "truncated" }, "one marker, the last event")
        // The TTL index the supervisor made: JOB_EVENTS_TTL_DAYS in seconds on `at`, and (jobId, seq) unique.
        let indexes = try await h.store.eventIndexes()
        let ttl = indexes.first { $0["name"] == "ttl_at" }
        #expect(ttl?["key"]?["at"]?.intValue == 1 && ttl?["expireAfterSeconds"]?.intValue == 7 * 86_400, "\(indexes)")
        let seq = indexes.first { $0["name"] == "job_seq" }
        #expect(seq?["unique"] == true && seq?["key"]?["jobId"]?.intValue == 1, "\(indexes)")
        // `doctor` checks them against JOB_EVENTS_TTL_DAYS.
        let doctor = try await h.agentRunner(["doctor"], env: ["JOB_EVENTS_TTL_DAYS": "7"])
        #expect(doctor.stdout.contains("ok    job_events indexes present: job_seq, ttl_at (7 days)"), "\(doctor.stdout)")
        let other = try await h.agentRunner(["doctor"])
        #expect(other.stdout.contains("warn  job_events TTL index keeps events 7 days, not JOB_EVENTS_TTL_DAYS=30"), "\(other.stdout)")
        // A supervisor started with another lifetime changes the index (no error, no second index).
        try await h.store.ensureEventIndexes(ttlDays: 30)
        let again = try await h.store.eventIndexes()
        let lifetime = again.first { $0["name"] == "ttl_at" }?["expireAfterSeconds"]?.intValue
        #expect(lifetime == Int64(30 * 86_400), "\(again)")
        #expect(again.count == indexes.count)
    }

    /// The egress proxy's decisions and metering in the stream: a tunnel
    /// it opened (an exact loopback rule), a request it refused at its
    /// policy (before any connect), and the model call it metered.
    @Test func theProxysDecisionsAndModelCallsAreInTheStream() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let provider = try await FixtureServer("fake_provider.py", ["ok", h.root + "/provider.jsonl"])
        defer { provider.stop() }
        let agent = try Containment.install("fake_cline.py", in: h.root, as: "fake_cline", prefix: "MODE = \"v3\"")
        let cline = try fakeCline(h, """
        curl -s -o /dev/null -m 10 --noproxy '' -p -x "$HTTPS_PROXY" http://127.0.0.1:\(provider.port)/ping
        curl -s -o /dev/null -m 10 --noproxy '' -x "$HTTP_PROXY" http://127.0.0.1:9/
        exec \(agent) "$@"
        """)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline, [
            "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "1", "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1",
            "CLINE_MODEL": "test-model-1", "CLINE_API_KEY": "sk-REAL-provider-key-0123456789abcdef",
            "JOB_EGRESS_ALLOW": "127.0.0.1:\(provider.port)"]))
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let events = try await stored(h, id)
        let text = events.map(\.jsonString).joined(separator: "\n")
        #expect(events.contains { $0["kind"] == "egress_allowed" && $0["data"]?["target"]?.stringValue == "127.0.0.1:\(provider.port)" }, "\(text)")
        #expect(events.contains { $0["kind"] == "egress_denied" && $0["data"]?["target"] == "127.0.0.1:9"
            && $0["data"]?["reason"] == "not_allowed" }, "\(text)")
        let call = events.first { $0["kind"] == "provider_call" }
        #expect((call?["data"]?["inputTokens"]?.intValue ?? 0) > 0 && call?["data"]?["outputTokens"]?.intValue == 210
            && call?["data"]?["status"]?.intValue == 200 && call?["data"]?["model"] == "test-model-1", "\(text)")
        #expect(events.contains { $0["kind"] == "model_request" } && events.contains { $0["kind"] == "model_response" })
        #expect(!text.contains("sk-REAL"), "the provider key never reaches the stream")
        #expect(events.compactMap { $0["seq"]?.intValue } == Array(1...Int64(events.count)))
    }
}
