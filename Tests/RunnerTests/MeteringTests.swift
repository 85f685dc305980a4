#if canImport(Glibc)
import Glibc
#endif
@testable import ChildEgressProxy
import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// The egress proxy meters every model call on its keyed routes from the
/// provider's own answer, streamed or not, in each dialect, to the token:
/// the real proxy process in front of fake_provider.py, which answers with
/// known usage (Anthropic 1200 in + 800 cache read + 64 cache write, 340
/// out; chat completions 900 prompt of which 512 cached, 210 out; Responses
/// 700 input of which 256 cached, 150 out; Gemini 1500 prompt of which 1000
/// cached, 420 out).
@Suite(.serialized) struct MeteringTests {
    /// One call: the route's path, the body, and the usage expected (in, out, cache read, cache write).
    struct Call {
        let path: String, body: String, tokens: [Int], model: String, streamed: Bool
        var extra = ""
    }

    static func price(_ model: String, _ t: [Int]) -> Double? {
        PriceTable.shipped.price(model)?.cost(input: t[0], output: t[1], cacheRead: t[2], cacheWrite: t[3])
    }

    func check(_ rig: ProxyProcessRig, _ calls: [Call]) async throws {
        for (n, call) in calls.enumerated() {
            let answer = try await rig.post(call.path, call.body, extra: call.extra)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(call.path): \(answer)")
            let usage = try #require(await rig.events(.usage, atLeast: n + 1).last?.usage, "\(call.path)")
            #expect([usage.inputTokens, usage.outputTokens, usage.cacheReadTokens, usage.cacheWriteTokens] == call.tokens,
                    "\(call.path) \(call.body): \(usage)")
            #expect(usage.model == call.model && usage.status == 200 && usage.metered && usage.streamed == call.streamed,
                    "\(usage)")
            let expected = try #require(Self.price(call.model, call.tokens), "the shipped table prices \(call.model)")
            #expect(abs((usage.cost ?? -1) - expected) < 1e-12, "\(usage)")
        }
        // The supervisor's sum (metadata.usage) is exact too.
        let report = ProxyReport()
        for event in await rig.events(.usage, atLeast: calls.count) { _ = report.take(event, control: ChildControl()) }
        let totals = try #require(report.usage)
        #expect(totals.requests == calls.count)
        #expect(totals.inputTokens == calls.map { $0.tokens[0] }.reduce(0, +))
        #expect(totals.outputTokens == calls.map { $0.tokens[1] }.reduce(0, +))
        #expect(totals.cacheReadTokens == calls.map { $0.tokens[2] }.reduce(0, +))
        #expect(totals.cacheWriteTokens == calls.map { $0.tokens[3] }.reduce(0, +))
        #expect(abs((totals.cost ?? -1) - calls.compactMap { Self.price($0.model, $0.tokens) }.reduce(0, +)) < 1e-12)
        #expect(totals.json["byModel"]?.objectValue?.count == Set(calls.map(\.model)).count, "\(totals.json)")
    }

    @Test func anthropicStreamedAndNot() async throws {
        let rig = try await ProxyProcessRig(.anthropic)
        defer { rig.stop() }
        let model = "claude-sonnet-4-5-20250929"
        let tokens = [1200, 340, 800, 64]
        try await check(rig, [
            Call(path: "/provider/v1/messages", body: #"{"model":"\#(model)","max_tokens":1024}"#, tokens: tokens,
                 model: model, streamed: false),
            Call(path: "/provider/v1/messages", body: #"{"model":"\#(model)","max_tokens":1024,"stream":true}"#,
                 tokens: tokens, model: model, streamed: true),
        ])
    }

    @Test func openAIChatAndResponsesStreamedAndNot() async throws {
        let rig = try await ProxyProcessRig(.openaiCompatible, basePath: "/v1")
        defer { rig.stop() }
        let chat = [388, 210, 512, 0], responses = [444, 150, 256, 0]
        try await check(rig, [
            Call(path: "/provider/chat/completions", body: #"{"model":"gpt-4.1"}"#, tokens: chat, model: "gpt-4.1", streamed: false),
            Call(path: "/provider/chat/completions", body: #"{"model":"gpt-4.1","stream":true}"#, tokens: chat,
                 model: "gpt-4.1", streamed: true),
            Call(path: "/provider/v1/chat/completions",
                 body: #"{"model":"gpt-4.1","stream":true,"stream_options":{"include_usage":true}}"#, tokens: chat,
                 model: "gpt-4.1", streamed: true),
            Call(path: "/provider/responses", body: #"{"model":"gpt-5-mini"}"#, tokens: responses, model: "gpt-5-mini",
                 streamed: false),
            Call(path: "/provider/responses", body: #"{"model":"gpt-5-mini","stream":true}"#, tokens: responses,
                 model: "gpt-5-mini", streamed: true),
        ])
    }

    /// Gemini as the Cline provider and on the job child's own Gemini route:
    /// JSON, server-sent events (each chunk's usage so far; the last wins) and
    /// the JSON array of a stream without `alt=sse`.
    @Test func geminiOnBothRoutes() async throws {
        let rig = try await ProxyProcessRig(.gemini)
        defer { rig.stop() }
        let tokens = [500, 420, 1000, 0], model = "gemini-2.5-flash", body = #"{"contents":[]}"#
        let token = "\(GeminiRoute.tokenHeader): \(rig.routeToken)\r\n"
        try await check(rig, [
            Call(path: "/provider/v1beta/models/\(model):generateContent", body: body, tokens: tokens, model: model, streamed: false),
            Call(path: "/provider/v1beta/models/\(model):streamGenerateContent?alt=sse", body: body, tokens: tokens,
                 model: model, streamed: true),
            Call(path: "/provider/v1beta/models/\(model):streamGenerateContent", body: body, tokens: tokens, model: model,
                 streamed: false),
            Call(path: "/gemini/v1beta/models/\(model):generateContent", body: body, tokens: tokens, model: model,
                 streamed: false, extra: token),
        ])
        #expect(await rig.events(.usage, atLeast: 4).map { $0.usage?.route } == ["provider", "provider", "provider", "gemini"])
    }

    /// A streamed chat completion gets `stream_options.include_usage` from
    /// the proxy when it lacks it, and the extra usage chunk is taken out of
    /// the answer; an agent that asked for it gets it.
    @Test func theUsageChunkIsStrippedOnlyWhenTheProxyAskedForIt() async throws {
        let rig = try await ProxyProcessRig(.openaiCompatible, basePath: "/v1")
        defer { rig.stop() }
        let plain = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1","stream":true,"temperature":0.7}"#)
        #expect(plain.hasPrefix("HTTP/1.1 200") && plain.contains("text/event-stream"), "\(plain)")
        #expect(plain.contains("data: [DONE]") && plain.contains("I will wri") && plain.contains("\"finish_reason\": \"stop\""),
                "every other chunk passes: \(plain)")
        #expect(!plain.contains("\"usage\""), "the chunk the agent did not ask for is gone: \(plain)")
        let asked = try await rig.post("/provider/chat/completions",
                                       #"{"model":"gpt-4.1","stream":true,"stream_options":{"include_usage":true}}"#)
        #expect(asked.contains("\"usage\"") && asked.contains("\"choices\": []"), "\(asked)")
        let seen = try rig.requests()
        #expect(seen.count == 2)
        #expect(seen.map { $0["stream_options"]?["include_usage"]?.boolValue } == [true, true], "\(seen)")
        // Only the option is added: the rest of the agent's body went as sent.
        #expect(seen.first?["body_keys"] == ["model", "stream", "stream_options", "temperature"] && seen.first?["temperature"] == .double(0.7),
                "\(seen)")
        let usages = await rig.events(.usage, atLeast: 2)
        #expect(usages.count == 2 && usages.allSatisfy { $0.usage?.cacheReadTokens == 512 }, "\(usages)")
    }

    /// A model without a price is metered in tokens; its cost is unknown
    /// (null), never 0, and so is the job's when no call was priced.
    /// MODEL_PRICES_FILE adds it.
    @Test func anUnpricedModelHasAnUnknownCostUntilThePriceFileNamesIt() async throws {
        let rig = try await ProxyProcessRig(.anthropic)
        defer { rig.stop() }
        _ = try await rig.post("/provider/v1/messages", #"{"model":"acme-private-1","max_tokens":10}"#)
        let usage = try #require(await rig.events(.usage, atLeast: 1).first?.usage)
        #expect(usage.inputTokens == 1200 && usage.cost == nil, "\(usage)")
        var totals = UsageTotals()
        totals.add(usage)
        #expect(totals.json["cost"] == .null && totals.json["unpricedRequests"] == 1, "\(totals.json)")
        #expect(totals.summary.contains("cost unknown"))

        let file = rig.dir + "/prices.json"
        try #"{"takenOn": "2026-01-15", "models": {"acme-private-1": {"input": 2, "output": 10, "cacheRead": 0.2}}}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let config = try RunnerConfiguration(environment: Harness.minimalConfig.merging(["MODEL_PRICES_FILE": file]) { $1 })
        #expect(config.spend.prices.takenOn == "2026-01-15")
        #expect(config.spend.prices.price("claude-sonnet-4-5") == PriceTable.shipped.price("claude-sonnet-4-5"), "the shipped rest stays")
        let priced = try await ProxyProcessRig(.anthropic, prices: config.spend.prices)
        defer { priced.stop() }
        _ = try await priced.post("/provider/v1/messages", #"{"model":"acme-private-1","max_tokens":10}"#)
        let cost = try #require(await priced.events(.usage, atLeast: 1).first?.usage?.cost)
        // cacheWrite defaults to the input price.
        #expect(abs(cost - (1200.0 * 2 + 340 * 10 + 800 * 0.2 + 64 * 2) / 1e6) < 1e-12)
        for bad in [#"{"models": {"m": {"input": -1, "output": 1}}}"#, #"{"models": {"m": {"output": 1}}}"#, "not json"] {
            try bad.write(toFile: file, atomically: true, encoding: .utf8)
            #expect(throws: ConfigurationError.self) {
                try RunnerConfiguration(environment: Harness.minimalConfig.merging(["MODEL_PRICES_FILE": file]) { $1 })
            }
        }
    }

    /// Prices are found for dated and routed names, by the longest listed prefix.
    @Test func priceLookup() {
        let t = PriceTable.shipped
        #expect(t.price("claude-sonnet-4-5-20250929") == t.models["claude-sonnet-4-5"])
        #expect(t.price("anthropic/claude-sonnet-4-5") == t.models["claude-sonnet-4-5"])
        #expect(t.price("anthropic/claude-sonnet-4.5") == t.models["claude-sonnet-4-5"], "OpenRouter's dotted name")
        #expect(t.price("gpt-4o-mini-2024-07-18") == t.models["gpt-4o-mini"])
        #expect(t.price("gpt-4o-2024-08-06") == t.models["gpt-4o"])
        #expect(t.price("models/gemini-2.5-flash-lite") == t.models["gemini-2.5-flash-lite"])
        #expect(t.price("gpt-4oo") == nil && t.price("acme") == nil)
    }

    /// The usage chunk the proxy asked for is taken out, every other byte
    /// passes, and an answer without newlines is passed on in bounded pieces.
    @Test func theUsageChunkFilterHoldsAtMostItsCap() {
        var filter = UsageChunkFilter()
        let chunk = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n"
        let passed = Array((chunk + usage + "data: [DONE]\n\n").utf8).withUnsafeBytes { filter.pass($0) } + filter.finish()
        #expect(String(decoding: passed, as: UTF8.self) == chunk + "data: [DONE]\n\n")
        var endless = UsageChunkFilter()
        let piece = [UInt8](repeating: UInt8(ascii: "x"), count: 4096)
        var out = 0
        for _ in 0..<64 { out += piece.withUnsafeBytes { endless.pass($0) }.count }
        #expect(out >= 64 * 4096 - UsageChunkFilter.eventCap - 1, "held back \(64 * 4096 - out) bytes")
        #expect(out + endless.finish().count == 64 * 4096)
    }
}
