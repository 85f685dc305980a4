import Foundation
@testable import ChildGeneration
import JobStore
import RunnerCore
import Testing

/// What the agent prints becomes bounded events: the child keeps only the
/// typed fields it reads (never the agent's raw JSON), and an event line
/// always fits the child's pipe, so an agent cannot fail its job with a
/// line the supervisor cannot read.
@Suite(.serialized) struct AgentEventBoundsTests: ClineFixtures {
    /// The run's result keeps `finishReason` as a string and `iterations` as
    /// a number only; anything else the agent put there is not copied.
    @Test func theRunResultKeepsOnlyTypedFields() {
        var events = ClineEvents()
        events.read(["type": "run_result", "text": "ok", "finishReason": ["nested": ["////"]], "iterations": "many"],
                    type: "run_result")
        events.read(["type": "run_result", "text": "ok", "finishReason": "completed", "iterations": 3], type: "run_result")
        let taken = events.take()
        #expect(taken.count == 2)
        #expect(taken.first?.data["finishReason"] == nil && taken.first?.data["iterations"] == nil, "\(taken)")
        #expect(taken.last?.data["finishReason"] == "completed" && taken.last?.data["iterations"]?.intValue == 3)
    }

    /// End to end: a fake Cline whose run_result line (under 64 KiB) holds
    /// thousands of short `////` strings, which JSON writes as `\/`. The job
    /// ends `done`; its child is not killed for a line the supervisor cannot read.
    @Test func anAgentLineOfEscapedStringsDoesNotFailTheJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        printf '# Built\\n' > README.md && echo 1 > main.py
        /usr/bin/python3 -c 'import json; row = ["////"] * 500; print(json.dumps({"type": "run_result", "text": "ok", "finishReason": [row] * 17, "iterations": 2}, separators=(",", ":")))'
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let messages = try await h.store.events(jobId: id, after: 0, kinds: ["message"], limit: 100)
        #expect(messages.contains { $0["data"]?["role"] == "result" && $0["data"]?["text"] == "ok" }, "\(messages)")
    }

    /// A file over `CommitDiff.maxSourceBytes` gets no `diff` (its patch
    /// would be built whole in memory before the cut), but is listed in the
    /// commit's `changes` with its size; a small file's diff is there.
    @Test func aLargeFileIsListedButGetsNoDiff() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        printf '# Built\\n' > README.md
        /usr/bin/python3 -c 'open("big.txt", "w").write("a line of the big file\\n" * 20000)'
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let changes = try await h.store.events(jobId: id, after: 0, kinds: ["changes"], limit: 10)
        let files = changes.first?["data"]?["files"]?.arrayValue ?? []
        let big = files.first { $0["path"] == "big.txt" }
        #expect(big?["bytes"]?.intValue == Int64(23 * 20000) && big?["binary"] == false, "\(files)")
        let diffs = try await h.store.events(jobId: id, after: 0, kinds: ["diff"], limit: 100)
        #expect(diffs.contains { $0["data"]?["path"] == "README.md" }, "\(diffs)")
        #expect(!diffs.contains { $0["data"]?["path"] == "big.txt" }, "\(diffs)")
    }
}
