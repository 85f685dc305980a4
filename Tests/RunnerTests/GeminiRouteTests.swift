#if canImport(Glibc)
import Glibc
#endif
import ChildEgressProxy
import Foundation
import RunnerCore
import Testing

/// The Gemini key never reaches the job child (nor the doctor's probe): the
/// egress proxy holds it, and its `/gemini/…` route adds `x-goog-api-key`
/// for a caller that shows the job's route token.
@Suite(.serialized) struct GeminiRouteTests {
    static let key = GeminiTests.key

    /// A stand-in job child that records its ticket line and its environment,
    /// then runs the real one as its own child, relaying stdin (SANDBOX=off
    /// and JOB_NETWORK=host: no namespace init is needed).
    static func recordingChild(_ h: Harness) throws -> String {
        let path = h.root + "/recording-child"
        try """
        #!/usr/bin/env python3
        import json, os, subprocess, sys, threading
        line = b""
        while not line.endswith(b"\\n"):
            b = os.read(0, 1)
            if not b:
                break
            line += b
        open("\(h.root)/ticket.json", "wb").write(line)
        json.dump(dict(os.environ), open("\(h.root)/environment.json", "w"))
        child = subprocess.Popen(["\(TestEnv.binDir)/agent-runner-job"], stdin=subprocess.PIPE)
        child.stdin.write(line)
        child.stdin.flush()
        def relay():
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                child.stdin.write(data)
                child.stdin.flush()
            child.stdin.close()
        threading.Thread(target=relay, daemon=True).start()
        os._exit(child.wait())
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test func theChildHoldsNoKeyAndTheProxyAddsIt() async throws {
        let (job, requests, h) = try await GeminiTests().runJob("ok", extra: ["SANDBOX": "off", "JOB_NETWORK": "host"]) {
            ["AGENT_RUNNER_JOB_PATH": try Self.recordingChild($0)]
        }
        defer { h.cleanup() }
        #expect(job["status"]?.stringValue == "done", "\(job["logs"]?.jsonString ?? "")")
        #expect(job["metadata"]?["generator"]?.stringValue == "gemini")
        let ticket = try String(contentsOfFile: h.root + "/ticket.json", encoding: .utf8)
        let environment = try String(contentsOfFile: h.root + "/environment.json", encoding: .utf8)
        #expect(ticket.contains("\"geminiRouteToken\""), "the ticket is the real one")
        #expect(!ticket.contains(Self.key), "the Gemini key is not in the child's ticket")
        #expect(!environment.contains(Self.key), "nor in its environment")
        #expect(requests.count == 1)
        #expect(requests.first?.headerValues("x-goog-api-key") == [Self.key], "the proxy added the key, once")
        #expect(requests.first?.headerValues("x-agent-runner-route") == [], "the route token stays with the proxy")
    }

    /// Without the job's route token (the agent has none) the route refuses
    /// and nothing reaches the API; with it, the key is added.
    @Test func theRouteNeedsTheJobsToken() async throws {
        let dir = TestEnv.tempDir("gemini-route")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gemini = try await FakeGemini(scenario: "ok", dir: dir)
        defer { gemini.stop() }
        let token = GeminiRoute.newToken()
        let ticket = EgressProxyTicket(socketPath: dir + "/egress.sock", rules: [], provider: nil, providerKey: nil,
                                       gemini: GeminiUpstream(apiBase: gemini.base + "/", apiKey: Self.key, routeToken: token))
        let proxy = try InProcessProxy(ticket, eventsPath: dir + "/events.jsonl")
        defer { proxy.stop() }
        func get(_ headers: String) async throws -> String {
            try await proxy.exchange("GET /gemini/v1beta/models/m HTTP/1.1\r\nHost: x\r\n\(headers)Connection: close\r\n\r\n")
        }
        let without = try await get("x-goog-api-key: \(Self.key)\r\n")
        #expect(without.hasPrefix("HTTP/1.1 403"), "\(without)")
        let wrong = try await get("\(GeminiRoute.tokenHeader): \(GeminiRoute.newToken())\r\n")
        #expect(wrong.hasPrefix("HTTP/1.1 403"), "\(wrong)")
        #expect(try gemini.requests().isEmpty, "a refused request never reaches the API")
        // Each refusal is a `denied` event for the route.
        let denied = proxy.eventLog().filter { $0.kind == .denied }
        #expect(denied.count == 2 && denied.allSatisfy { $0.target == GeminiRoute.prefix && $0.reason == "not_allowed" }, "\(denied)")
        let with = try await get("\(GeminiRoute.tokenHeader): \(token)\r\nx-goog-api-key: AIza-from-the-caller\r\n")
        #expect(with.hasPrefix("HTTP/1.1 200"), "\(with)")
        let seen = try gemini.requests()
        #expect(seen.count == 1 && seen.first?["path"]?.stringValue == "/v1beta/models/m")
        // Every header line the API got (duplicates included): the key once, the caller's key and the token nowhere.
        #expect(seen.first?.headerValues("x-goog-api-key") == [Self.key], "the caller's key header is replaced: \(seen)")
        #expect(seen.first?.allHeaderValues.contains { $0 == "AIza-from-the-caller" || $0 == token } == false, "\(seen)")
    }

    /// `doctor --online` checks the model through a proxy of its own: the
    /// probe's request holds no key, the API still sees it in the header.
    @Test func doctorOnlineGoesThroughTheRoute() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let gemini = try await FakeGemini(scenario: "ok", dir: h.root)
        defer { gemini.stop() }
        // A stand-in job child that records what --probe gets on stdin, then runs the real one.
        let recorder = h.root + "/probe-recorder"
        try """
        #!/bin/sh
        if [ "$1" = "--probe" ]; then
            tee "\(h.root)/probe-request.json" | "\(TestEnv.binDir)/agent-runner-job" "$@"
            exit $?
        fi
        exec "\(TestEnv.binDir)/agent-runner-job" "$@"
        """.write(toFile: recorder, atomically: true, encoding: .utf8)
        chmod(recorder, 0o755)
        let r = try await h.agentRunner(["doctor", "--online"], env: [
            "AGENT_RUNNER_JOB_PATH": recorder, "GEMINI_API_BASE": gemini.base, "GENERATORS": "gemini,scaffold",
            "GOOGLE_GEMINI_API_KEY": Self.key, "GEMINI_MODEL": "gemini-test-model"])
        #expect(r.stdout.contains("ok    gemini: model gemini-test-model") && r.stdout.contains("answered"), "\(r.stdout)")
        let request = try String(contentsOfFile: h.root + "/probe-request.json", encoding: .utf8)
        #expect(request.contains("geminiRoute"), "the probe gets the route")
        #expect(!request.contains(Self.key), "the probe's request holds no key")
        let seen = try gemini.requests()
        #expect(seen.count == 1 && seen.first?["method"]?.stringValue == "GET")
        #expect(seen.first?["headers"]?["x-goog-api-key"]?.stringValue == Self.key)
        #expect(!r.stdout.contains(Self.key) && !r.stderr.contains(Self.key))
    }
}
