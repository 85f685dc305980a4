#if canImport(Glibc)
import Glibc
#endif
@testable import ChildEgressProxy
import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// The egress proxy's side of the daily budgets (the real proxy process in
/// front of fake_provider.py, its `reserve` events answered as the supervisor
/// answers them): each model call reserves its bound before it starts, a
/// request without an output limit gets one, a refused reservation refuses
/// the call in the provider's own form, and an unpriced model is refused.
@Suite struct DailyBudgetProxyTests {
    static let gpt41 = PriceTable.shipped.price("gpt-4.1")!

    /// The body of an answer.
    static func body(_ answer: String) throws -> JSONValue {
        try JSONValue.parse(String(answer[try #require(answer.range(of: "\r\n\r\n")).upperBound...]))
    }

    /// A chat completion without max_tokens under a daily budget: the proxy
    /// adds `max_tokens` (an OpenAI-compatible provider's field; the cap,
    /// 8192, is below what $5 buys), reserves the bound of what it sends
    /// (its bytes at the dearest input price, 8192 tokens at the output
    /// price) before the call starts, and names the reservation on the call's
    /// `usage`, which settles it.
    @Test func aCallReservesItsBoundBeforeItStarts() async throws {
        let rig = try await ProxyProcessRig(.openaiCompatible, basePath: "/v1", dailyBudgetUSD: 5)
        defer { rig.stop() }
        let answer = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1","messages":[],"n":2}"#)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        let request = try #require(try rig.requests().first)
        #expect(request["max_tokens"]?.intValue == 8192, "\(request.jsonString)")
        let bytes = Double(try #require(request["bytes"]?.intValue))
        let bound = (bytes * max(Self.gpt41.input, Self.gpt41.cacheRead, Self.gpt41.cacheWrite) + 2 * 8192 * Self.gpt41.output) / 1e6
        let usage = try #require(await rig.events(.usage, atLeast: 1).first)
        let kinds = rig.allEvents.map(\.kind).filter { $0 == .reserve || $0 == .usage }
        #expect(kinds == [.reserve, .usage], "the reservation comes before the call: \(kinds)")
        let reserved = try #require(rig.allEvents.first { $0.kind == .reserve }?.reservation)
        #expect(abs(reserved.usd - bound) < 1e-12, "\(reserved.usd) for a bound of \(bound) (two choices)")
        #expect(usage.reservation == reserved, "the usage settles its reservation")
    }

    /// Under a job's token budget alone, OpenAI's own chat completions get
    /// `max_completion_tokens` (its reasoning models refuse `max_tokens`),
    /// at most what is left of the budget; a request with its own limit
    /// keeps it; a Gemini request gets `generationConfig.maxOutputTokens`.
    @Test func anOutputLimitIsAddedInTheDialectsField() async throws {
        let rig = try await ProxyProcessRig(.openai, basePath: "/v1",
                                            budget: JobBudget(tokens: BudgetLimit(5000, setting: "JOB_BUDGET_TOKENS", unit: .tokens)))
        defer { rig.stop() }
        _ = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1","messages":[]}"#)
        _ = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1","messages":[],"max_tokens":7}"#)
        _ = await rig.events(.usage, atLeast: 2)
        let token = "\(GeminiRoute.tokenHeader): \(rig.routeToken)\r\n"
        _ = try await rig.post("/gemini/v1beta/models/gemini-2.5-flash:generateContent", #"{"contents":[]}"#, extra: token)
        let requests = try rig.requests()
        try #require(requests.count == 3, "\(requests)")
        #expect(requests[0]["max_completion_tokens"]?.intValue == 5000 && requests[0]["max_tokens"]?.isNull == true,
                "\(requests[0].jsonString)")
        #expect(requests[1]["max_tokens"]?.intValue == 7 && requests[1]["max_completion_tokens"]?.isNull == true)
        // Two chat calls of 1110 tokens each: 2780 are left.
        #expect(requests[2]["generation_config"]?["maxOutputTokens"]?.intValue == 2780, "\(requests[2].jsonString)")
    }

    /// A reservation the supervisor refuses: the call is refused with 402 in
    /// the provider's own error form, nothing reaches the provider, and the
    /// proxy's `budget` notice is the daily one (the job ends `daily_budget_exceeded`).
    @Test func aRefusedReservationRefusesTheCall() async throws {
        let limit = BudgetLimit(0.01, setting: "USER_DAILY_BUDGET_USD", unit: .usd)
        let notice = BudgetNotice(limit: limit, spent: 0.0123, percent: 100, exceeded: true, kind: .daily)
        let rig = try await ProxyProcessRig(.anthropic, dailyBudgetUSD: 0.01) { _ in notice }
        defer { rig.stop() }
        let refused = try await rig.post("/provider/v1/messages", #"{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[]}"#)
        #expect(refused.hasPrefix("HTTP/1.1 402"), "\(refused)")
        #expect(try Self.body(refused)["error"]?["type"] == "budget_exceeded")
        #expect(try rig.requests().isEmpty, "nothing reached the provider")
        let sent = try #require(await rig.events(.budget, atLeast: 1).first?.budget)
        #expect(sent.kind == .daily && sent.exceeded && sent.failure.code == .dailyBudgetExceeded, "\(sent)")
    }

    /// With only a daily budget (no job budget), a model the price table does
    /// not list is refused before it reaches the provider: its cost could not
    /// be counted, so it would escape the daily budget.
    @Test func anUnpricedModelIsRefusedUnderADailyBudget() async throws {
        let rig = try await ProxyProcessRig(.openaiCompatible, basePath: "/v1", dailyBudgetUSD: 5)
        defer { rig.stop() }
        let refused = try await rig.post("/provider/chat/completions", #"{"model":"acme-free-lunch-9","messages":[]}"#)
        #expect(refused.hasPrefix("HTTP/1.1 400"), "\(refused)")
        let error = try Self.body(refused)["error"]
        #expect(error?["type"] == "unpriced_model", "\(String(describing: error))")
        #expect(error?["message"]?.stringValue?.contains("USER_DAILY_BUDGET_USD/PROJECT_DAILY_BUDGET_USD") == true,
                "\(String(describing: error))")
        #expect(try rig.requests().isEmpty, "nothing reached the provider")
        #expect(await rig.events(.denied, atLeast: 1).first?.reason == "unpriced_model")
        #expect(!rig.allEvents.contains { $0.kind == .reserve }, "refused before any reservation")
    }
}
