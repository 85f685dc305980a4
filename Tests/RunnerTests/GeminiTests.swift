import Foundation
import ChildGeneration
import RunnerCore
import Testing

/// A real loopback HTTP server that answers like the Gemini API.
final class FakeGemini: Sendable {
    let server: FixtureServer
    let log: String

    init(scenario: String, dir: String) async throws {
        log = dir + "/gemini-requests.jsonl"
        server = try await FixtureServer("fake_gemini.py", [scenario, log])
    }

    var port: Int { server.port }
    var base: String { "http://127.0.0.1:\(port)" }
    func requests() throws -> [JSONValue] { try FixtureServer.jsonLines(log) }
    func stop() { server.stop() }
}

@Suite(.serialized) struct GeminiTests {
    static let key = "AIzaFAKEfakeFAKEfakeFAKEfakeFAKEfake12345"

    /// Runs one job against the fake server; returns the job document and the requests seen.
    func runJob(_ scenario: String, generators: String = "gemini", extra: [String: String] = [:],
                prepare: (Harness) throws -> [String: String] = { _ in [:] })
        async throws -> (job: JSONValue, requests: [JSONValue], harness: Harness) {
        let h = try Harness()
        let prepared = try prepare(h)
        try await h.makeRemote()
        let server = try await FakeGemini(scenario: scenario, dir: h.root)
        defer { server.stop() }
        #expect(server.port > 0)
        let id = try await h.seed(try TestEnv.exampleSpec("ecommerce-seed-shape.json"))
        let env = ["GENERATORS": generators, "GEMINI_API_BASE": server.base, "GOOGLE_GEMINI_API_KEY": Self.key,
                   "GEMINI_MODEL": "gemini-test-model", "JOB_MAX_ATTEMPTS": "1"].merging(extra) { $1 }.merging(prepared) { $1 }
        let run = try await h.agentRunner(["run", "--exit-when-idle"], env: env)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stderr.contains(Self.key), "the key must never reach the supervisor's log")
        return (try await h.job(id), try server.requests(), h)
    }

    func logs(_ job: JSONValue) -> [String] { job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }

    @Test func answeredJobIsDoneWithItsFilesInThePushedCommit() async throws {
        let (job, requests, h) = try await runJob("ok")
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        #expect(job["metadata"]?["generator"]?.stringValue == "gemini")
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(tree.split(separator: "\n").map(String.init).sorted() == ["README.md", "api/main.py", "web/index.html"])
        #expect(requests.count == 1)
        let r = requests[0]
        #expect(r["path"]?.stringValue == "/v1beta/models/gemini-test-model:generateContent")
        #expect(r["headers"]?["x-goog-api-key"]?.stringValue == Self.key)
        #expect(r["query"]?.stringValue?.contains(Self.key) == false)
        #expect(r["query"]?.stringValue == "")
        #expect(r["body"]?["generationConfig"]?["responseMimeType"]?.stringValue == "application/json")
        #expect(r["body"]?["generationConfig"]?["responseSchema"]?["required"] == ["files"])
        #expect(r["body"]?["systemInstruction"] != nil)
        #expect(r["body"]?.jsonString.contains("Demo shop") == true, "the spec and instructions are sent")
        #expect(!logs(job).joined().contains(Self.key))
    }

    @Test func failingClineFallsBackToGemini() async throws {
        let (job, requests, h) = try await runJob("ok", generators: "cline,gemini,scaffold") { h in
            try FileManager.default.createDirectory(atPath: h.root + "/bin", withIntermediateDirectories: true)
            try "#!/bin/sh\necho 'agent crashed' >&2\nexit 2\n".write(toFile: h.root + "/bin/cline", atomically: true, encoding: .utf8)
            chmod(h.root + "/bin/cline", 0o755)
            return ["CLINE_CMD": h.root + "/bin/cline", "CLINE_ENABLED": "true"]
        }
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        #expect(job["metadata"]?["generator"]?.stringValue == "gemini")
        #expect(logs(job).contains("cline stderr: agent crashed"))
        #expect(logs(job).contains { $0.contains("generator cline failed: cline: exited with code 2") })
        #expect(requests.count == 1)
    }

    @Test func quotaErrorIsRetriedAfterRetryInfoDelay() async throws {
        // The generator's own retry, with the egress proxy's off (BudgetTests cover the proxy's).
        let (job, requests, h) = try await runJob("retry", extra: ["PROVIDER_RETRIES": "0"])
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        #expect(requests.count == 2)
        #expect(logs(job).contains { $0.contains("RESOURCE_EXHAUSTED") && $0.contains("retrying in 0.4 s") })
    }

    @Test func seedMapFormInACodeFenceIsAccepted() async throws {
        let (job, _, h) = try await runJob("seedmap")
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        #expect(try await Git.run(["-C", h.remote, "show", "main:src/app.js"]) == "1;")
    }

    @Test func hostilePathsFailWithUnsafeOutputAndNothingEscapes() async throws {
        let (job, _, h) = try await runJob("hostile")
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "unsafe_output")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("../escape.txt") && message.contains(".GIT/config") && message.contains("/etc/evil"))
        #expect(!FileManager.default.fileExists(atPath: h.workdir + "/escape.txt"))
        #expect(!FileManager.default.fileExists(atPath: "/etc/evil"))
    }

    @Test(arguments: [
        ("invalid", "HTTP 400 INVALID_ARGUMENT: API key not valid"),
        ("maxtokens", "truncated (finishReason MAX_TOKENS)"),
        ("safety", "the prompt was blocked (SAFETY)"),
    ])
    func failuresAreNamedAndNotRetried(scenario: String, expected: String) async throws {
        let (job, requests, h) = try await runJob(scenario)
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "generation_failed")
        #expect(job["error"]?["message"]?.stringValue?.contains(expected) == true, "\(job["error"]?.jsonString ?? "")")
        #expect(job["error"]?["retryable"]?.boolValue == false)
        #expect(requests.count == 1, "a non-retryable answer is not asked again")
    }

    @Test func slowServerTimesOutAndTheChainFallsBack() async throws {
        let (job, _, h) = try await runJob("slow", generators: "gemini,scaffold", extra: ["GEMINI_TIMEOUT_SECONDS": "2"])
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["generator"]?.stringValue == "scaffold")
        #expect(logs(job).contains { $0.contains("no answer within GEMINI_TIMEOUT_SECONDS=2") })
    }

    @Test func oversizedBodyIsRefused() async throws {
        let (job, _, h) = try await runJob("huge", extra: ["JOB_MAX_TOTAL_MB": "1"])
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["message"]?.stringValue?.contains("larger than the cap") == true, "\(job["error"]?.jsonString ?? "")")
    }

    @Test(arguments: [("ok", "ok    gemini: model gemini-test-model", 0), ("invalid", "fail  gemini: model gemini-test-model", 1)])
    func doctorOnlineAsksTheModel(scenario: String, line: String, exit: Int32) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let server = try await FakeGemini(scenario: scenario, dir: h.root)
        defer { server.stop() }
        let r = try await h.agentRunner(["doctor", "--online"], env: ["GEMINI_API_BASE": server.base, "GENERATORS": "gemini,scaffold",
                                                                     "GOOGLE_GEMINI_API_KEY": Self.key, "GEMINI_MODEL": "gemini-test-model"])
        #expect(r.stdout.contains(line), "\(r.stdout)")
        if exit == 0 { #expect(r.stdout.contains("answered")) } else { #expect(r.status != 0 && r.stdout.contains("API key not valid")) }
        #expect(!r.stdout.contains(Self.key) && !r.stderr.contains(Self.key))
    }

    @Test func parsingForms() throws {
        #expect(try GeminiGenerator.files(fromText: #"{"files":[{"path":"a","content":"b"}]}"#).map(\.path) == ["a"])
        #expect(try GeminiGenerator.files(fromText: "```json\n{\"files\":{\"x\":\"y\"}}\n```").map(\.content) == ["y"])
        #expect(throws: JobFailure.self) { try GeminiGenerator.files(fromText: "sorry, I cannot") }
    }
}
