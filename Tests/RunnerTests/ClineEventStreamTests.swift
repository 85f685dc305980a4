import Foundation
import ChildGeneration
import RunnerCore
import Testing

/// The job's event stream as the real job child makes it from a fake `cline`
/// of each CLI generation (Tests/Fixtures/fake_cline.py, in the real
/// sandbox, against the loopback fake provider): every kind the child
/// produces, and each matching what the agent did.
extension ClineProviderTests {
    func jobEvents(_ run: Run) -> [JobEvent] {
        run.events.compactMap { if case .event(let e) = $0 { e } else { nil } }
    }

    func first(_ events: [JobEvent], _ kind: JobEvent.Kind, where test: ([String: JSONValue]) -> Bool = { _ in true }) -> JobEvent? {
        events.first { $0.kind == kind && test($0.data) }
    }

    /// What the child reports of every run: the generator's steps, the
    /// validation, the publish (no remote: the commit is kept, the push
    /// skipped) and the new commit's files and diffs.
    func expectRunnerSteps(_ events: [JobEvent]) {
        #expect(first(events, .generator) { $0["step"] == "started" && $0["generator"] == "cline" } != nil)
        #expect(first(events, .generator) { $0["step"] == "finished" && $0["generator"] == "cline" && $0["files"]?.intValue == 2 } != nil)
        #expect(first(events, .validation) { $0["finding"] == "tree" && $0["ok"] == true && $0["files"]?.intValue == 2 } != nil)
        #expect(first(events, .publish) { $0["step"] == "commit" && $0["commit"]?.stringValue?.count == 40 } != nil)
        #expect(first(events, .publish) { $0["step"] == "skipped" } != nil, "no remote: \(events.filter { $0.kind == .publish })")
        let changes = first(events, .changes)
        let files = changes?.data["files"]?.arrayValue ?? []
        #expect(Set(files.compactMap { $0["path"]?.stringValue }) == ["README.md", "api/server.js"], "\(String(describing: changes))")
        #expect(files.allSatisfy { $0["status"] == "added" && $0["binary"] == false })
        #expect(files.first { $0["path"] == "README.md" }?["bytes"]?.intValue == 26)
        let readme = first(events, .diff) { $0["path"] == "README.md" }
        #expect(readme?.data["text"]?.stringValue?.contains("+# Built by the fake Cline") == true, "\(String(describing: readme))")
        #expect(first(events, .diff) { $0["path"] == "api/server.js" } != nil)
        // Every event is bounded and encodes within the child's line.
        #expect(events.allSatisfy { $0.encodedSize <= JobEvent.maxEncodedBytes })
    }

    @Test func cline3OutputBecomesTheJobsEventStream() async throws {
        let run = try await run(mode: "v3", provider: "anthropic", args: "-y --json -v -c {repo} -t {timeout} {prompt}")
        #expect(run.metadata?.generator == "cline", "\(run.logs)")
        let events = jobEvents(run)
        let kinds = Set(events.map(\.kind))
        let expected: Set<JobEvent.Kind> = [.modelRequest, .modelResponse, .toolCall, .toolResult, .command, .fileWrite,
                                            .message, .error, .generator, .validation, .publish, .changes, .diff]
        #expect(expected.isSubset(of: kinds), "missing: \(expected.subtracting(kinds))")
        let request = first(events, .modelRequest)
        #expect(request?.data["model"] == "test-model-1" && request?.data["provider"] == "anthropic"
            && request?.data["iteration"]?.intValue == 1, "\(String(describing: request))")
        let response = first(events, .modelResponse)
        #expect(response?.data["inputTokens"]?.intValue == 1200 && response?.data["outputTokens"]?.intValue == 340)
        #expect(response?.data["durationMs"]?.intValue != nil)
        #expect(first(events, .toolCall) { $0["tool"] == "editor" && $0["input"] == "README.md" } != nil)
        #expect(first(events, .toolResult) { $0["tool"] == "editor" && $0["ok"] == true } != nil)
        #expect(first(events, .toolResult) { $0["tool"] == "run_commands" && $0["ok"] == false && $0["error"] == "make: not found" } != nil)
        #expect(first(events, .fileWrite) { $0["path"] == "README.md" && $0["operation"] == "create" && $0["bytes"]?.intValue == 26 } != nil,
                "\(events.filter { $0.kind == .fileWrite })")
        #expect(first(events, .command) { $0["command"] == "make test" && $0["exitCode"]?.intValue == 127 } != nil,
                "\(events.filter { $0.kind == .command })")
        #expect(first(events, .command) { $0["command"] == "ls" && $0["exitCode"]?.intValue == 0 } != nil)
        #expect(first(events, .message) { $0["role"] == "assistant" && $0["text"] == "I will write the README and the service." } != nil)
        #expect(first(events, .message) { $0["role"] == "result" && $0["text"] == "Built the project." && $0["finishReason"] == "completed" } != nil)
        #expect(first(events, .error) { $0["message"] == "rate limited" && $0["recoverable"] == true } != nil)
        expectRunnerSteps(events)
        // In the order the agent did it.
        let order = events.map(\.kind).filter { [.modelRequest, .toolCall, .command, .modelResponse].contains($0) }
        #expect(order.first == .modelRequest && order.last == .modelResponse, "\(order)")
    }

    @Test func cline2OutputBecomesTheJobsEventStream() async throws {
        let run = try await run(mode: "v2", provider: "anthropic")
        #expect(run.metadata?.generator == "cline", "\(run.logs)")
        let events = jobEvents(run)
        let kinds = Set(events.map(\.kind))
        let expected: Set<JobEvent.Kind> = [.modelRequest, .modelResponse, .toolCall, .toolResult, .command, .fileWrite,
                                            .message, .error, .generator, .validation, .publish, .changes, .diff]
        #expect(expected.isSubset(of: kinds), "missing: \(expected.subtracting(kinds))")
        // Two API requests, each with its tokens.
        #expect(events.filter { $0.kind == .modelRequest }.count == 2)
        let responses = events.filter { $0.kind == .modelResponse }
        #expect(responses.count == 2 && responses.allSatisfy { $0.data["inputTokens"]?.intValue == 1200 && $0.data["model"] == "test-model-1" },
                "\(responses)")
        #expect(first(events, .message) { $0["role"] == "task" } != nil)
        #expect(first(events, .message) { $0["role"] == "result" && $0["text"] == "Built the project." } != nil)
        #expect(first(events, .toolCall) { $0["tool"] == "newFileCreated" && $0["input"] == "README.md" } != nil)
        #expect(first(events, .fileWrite) { $0["path"] == "README.md" && $0["operation"] == "create" && $0["bytes"]?.intValue == 7 } != nil,
                "the content's size as the tool call gave it: \(events.filter { $0.kind == .fileWrite })")
        #expect(first(events, .command) { $0["command"] == "ls -la" } != nil)
        #expect(first(events, .toolResult) { $0["output"] == "README.md\napi" } != nil)
        #expect(first(events, .error) { $0["message"] == "retrying: the provider was busy" && $0["recoverable"] == true } != nil)
        expectRunnerSteps(events)
    }
}
