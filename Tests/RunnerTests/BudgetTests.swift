#if canImport(Glibc)
import Glibc
#endif
@testable import ChildEgressProxy
import Foundation
@testable import JobStore
import RunnerCore
@testable import SupervisorKit
import Testing

/// A job's budget is enforced by its egress proxy, where the agent cannot
/// reach: once a limit is reached the next model call is refused in the
/// provider's own error form, the job stops and ends `budget_exceeded`
/// (not retried), with warnings at 50 % and 80 % before.
@Suite(.serialized) struct BudgetTests {
    /// JOB_BUDGET_REQUESTS=2: two calls go through, the third gets a 402 in
    /// Anthropic's error form and never reaches the provider.
    @Test func aRequestBudgetRefusesTheNextCallInTheProvidersForm() async throws {
        let rig = try await ProxyProcessRig(.anthropic, budget: JobBudget(requests: BudgetLimit(2, setting: "JOB_BUDGET_REQUESTS", unit: .requests)))
        defer { rig.stop() }
        let body = #"{"model":"claude-haiku-4-5","max_tokens":100}"#
        for _ in 0..<2 {
            let answer = try await rig.post("/provider/v1/messages", body)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        }
        let refused = try await rig.post("/provider/v1/messages", body)
        #expect(refused.hasPrefix("HTTP/1.1 402"), "\(refused)")
        let json = try JSONValue.parse(String(refused[refused.range(of: "\r\n\r\n")!.upperBound...]))
        #expect(json["type"] == "error" && json["error"]?["type"] == "budget_exceeded", "\(json)")
        #expect(json["error"]?["message"]?.stringValue?.contains("JOB_BUDGET_REQUESTS=2 requests spent") == true, "\(json)")
        #expect(try rig.requests().count == 2, "the refused call never reached the provider")
        // Model listings and token counts are not model calls: they still pass.
        let count = try await rig.post("/provider/v1/messages/count_tokens", body)
        #expect(count.hasPrefix("HTTP/1.1 404") && count.contains("no such route"), "the provider's own answer: \(count)")
        #expect(try rig.requests().last?["path"]?.stringValue == "/v1/messages/count_tokens")
        let notices = await rig.events(.budget, atLeast: 3).compactMap(\.budget)
        #expect(notices.map(\.percent) == [50, 100, 100] && notices.map(\.exceeded) == [false, false, true], "\(notices)")
        #expect(notices.first?.message == "budget: 50% of JOB_BUDGET_REQUESTS=2 requests spent (1 requests)")
    }

    /// JOB_BUDGET_USD: the dollars by the price table. A chat completion of
    /// gpt-4.1 costs $0.002712 here; with $0.004 the first passes (50 %), the
    /// second passes the limit (its overrun named), the third is refused in
    /// OpenAI's error form.
    @Test func aDollarBudgetNamesTheSpendAndTheOverrun() async throws {
        let rig = try await ProxyProcessRig(.openaiCompatible, basePath: "/v1",
                                            budget: JobBudget(usd: BudgetLimit(0.004, setting: "JOB_BUDGET_USD", unit: .usd)))
        defer { rig.stop() }
        for _ in 0..<2 {
            let answer = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1"}"#)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        }
        let refused = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1"}"#)
        #expect(refused.hasPrefix("HTTP/1.1 402"), "\(refused)")
        let json = try JSONValue.parse(String(refused[refused.range(of: "\r\n\r\n")!.upperBound...]))
        #expect(json["error"]?["code"] == "budget_exceeded", "\(json)")
        let notices = await rig.events(.budget, atLeast: 3).compactMap(\.budget)
        #expect(notices.map(\.percent) == [50, 100, 135], "\(notices)")
        let last = try #require(notices.last)
        #expect(last.exceeded && last.message.hasPrefix("budget exceeded: JOB_BUDGET_USD=$0.0040 spent ($0.0054, over by $0.0014"),
                "\(last.message)")
    }

    /// Under a dollar budget, a model the price table does not list is
    /// refused before it reaches the provider (its cost could not be
    /// counted, so asking for it would escape the budget); a listed one goes.
    @Test func aDollarBudgetRefusesAnUnpricedModel() async throws {
        let rig = try await ProxyProcessRig(.openaiCompatible, basePath: "/v1",
                                            budget: JobBudget(usd: BudgetLimit(5, setting: "JOB_BUDGET_USD", unit: .usd)))
        defer { rig.stop() }
        for body in [#"{"model":"acme-free-lunch-9"}"#, #"{"messages":[]}"#] {
            let refused = try await rig.post("/provider/chat/completions", body)
            #expect(refused.hasPrefix("HTTP/1.1 400"), "\(refused)")
            let json = try JSONValue.parse(String(refused[refused.range(of: "\r\n\r\n")!.upperBound...]))
            #expect(json["error"]?["code"] == "unpriced_model", "\(json)")
        }
        let refusal = try #require(await rig.events(.denied, atLeast: 2).first)
        #expect(refusal.reason == "unpriced_model" && refusal.detail?.contains("model acme-free-lunch-9 has no price") == true
                && refusal.detail?.contains("JOB_BUDGET_USD") == true, "\(refusal)")
        #expect(try rig.requests().isEmpty, "neither reached the provider")
        let priced = try await rig.post("/provider/chat/completions", #"{"model":"gpt-4.1"}"#)
        #expect(priced.hasPrefix("HTTP/1.1 200"), "\(priced)")
        #expect(try rig.requests().count == 1)
    }

    /// JOB_BUDGET_TOKENS on the Gemini route: refused in Google's error form.
    @Test func aTokenBudgetOnTheGeminiRoute() async throws {
        let rig = try await ProxyProcessRig(.anthropic, budget: JobBudget(tokens: BudgetLimit(1000, setting: "JOB_BUDGET_TOKENS", unit: .tokens)))
        defer { rig.stop() }
        let token = "\(GeminiRoute.tokenHeader): \(rig.routeToken)\r\n"
        let path = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
        let first = try await rig.post(path, "{}", extra: token)
        #expect(first.hasPrefix("HTTP/1.1 200"), "\(first)")
        let refused = try await rig.post(path, "{}", extra: token)
        #expect(refused.hasPrefix("HTTP/1.1 402") && refused.contains("\"status\":\"BUDGET_EXCEEDED\""), "\(refused)")
        #expect(refused.contains("JOB_BUDGET_TOKENS=1000 tokens spent (1920 tokens"), "\(refused)")
    }

    /// The job document's own `budget` is untrusted: lower limits apply, the
    /// operator's stay the ceiling, anything malformed is `invalid_spec`.
    @Test func theJobsOwnBudgetIsCheckedAndCapped() throws {
        let operatorSettings = SpendSettings(budget: JobBudget(usd: BudgetLimit(5, setting: "JOB_BUDGET_USD", unit: .usd),
                                                       requests: BudgetLimit(100, setting: "JOB_BUDGET_REQUESTS", unit: .requests)))
        func budget(_ doc: JSONValue) throws -> JobBudget { try operatorSettings.budget(for: Job(["_id": "j", "budget": doc])) }
        let lower = try budget(["usd": .double(1.5), "requests": 500, "tokens": 20000])
        #expect(lower.usd == BudgetLimit(1.5, setting: "budget.usd", unit: .usd))
        #expect(lower.requests == BudgetLimit(100, setting: "JOB_BUDGET_REQUESTS", unit: .requests), "the operator's value is the ceiling")
        #expect(lower.tokens == BudgetLimit(20000, setting: "budget.tokens", unit: .tokens))
        #expect(try budget(nil) == operatorSettings.budget)
        for bad: JSONValue in [5, "2 dollars", ["usd": -1], ["usd": 0], ["tokens": .double(1.5)], ["usd": "1"],
                               ["dollars": 1], ["requests": .double(1e300)], [1, 2]] {
            do {
                _ = try budget(bad)
                Issue.record("accepted \(bad.jsonString)")
            } catch let failure as JobFailure {
                #expect(failure.code == .invalidSpec && !failure.retryable && failure.message.contains("budget"), "\(failure)")
            }
        }
    }

    /// End to end: an agent that keeps calling the model under
    /// JOB_BUDGET_REQUESTS=2 is refused its third call and then does not
    /// stop by itself; the supervisor stops the job, which ends
    /// `budget_exceeded` (not the timeout), not retried, its message naming
    /// the budget and the spend, its usage and the warnings recorded, and
    /// nothing pushed onto the project's branch.
    @Test func aJobOverItsBudgetEndsBudgetExceeded() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let rig = try await ClineRig(h, mode: "v3-stubborn")
        defer { rig.stop() }
        let requests = rig.requests
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: rig.env(model: "gpt-4.1", attempts: 3, [
            "JOB_TIMEOUT_SECONDS": "60", "JOB_BUDGET_REQUESTS": "2"]))
        #expect(r.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(job["error"]?["code"]?.stringValue == "budget_exceeded" && job["error"]?["retryable"] == false)
        #expect(job["attempts"]?.intValue == 1, "not retried")
        #expect(job["error"]?["message"]?.stringValue?.hasPrefix("budget exceeded: JOB_BUDGET_REQUESTS=2 requests spent") == true,
                "\(job["error"]?.jsonString ?? "")")
        #expect(try FixtureServer.jsonLines(requests).count == 2, "the third call never reached the provider")
        let usage = try #require(job["metadata"]?["usage"], "\(job.jsonString)")
        #expect(usage["requests"]?.intValue == 2 && usage["inputTokens"]?.intValue == 2 * 388, "\(usage)")
        guard case .double(let cost)? = usage["cost"] else { Issue.record("no cost: \(usage)"); return }
        #expect(abs(cost - 2 * 0.002712) < 1e-12, "\(usage)")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains("budget: 50% of JOB_BUDGET_REQUESTS=2 requests spent (1 requests)"), "\(logs)")
        #expect(logs.contains { $0.hasPrefix("budget exceeded: JOB_BUDGET_REQUESTS=2") }, "\(logs)")
        // Nothing went onto the project's branch: the partial tree is on the job's work-in-progress branch (CheckpointTests).
        #expect(try await Git.run(["-C", h.remote, "branch", "--list", "--format=%(refname:short)"]) == "agent-runner/wip/\(id)")
        // `agent-runner jobs` shows the job's cost.
        let listed = try await h.agentRunner(["jobs"])
        #expect(listed.stdout.split(separator: "\n").first?.contains("COST") == true, "\(listed.stdout)")
        #expect(listed.stdout.split(separator: "\n").contains { $0.hasPrefix(id) && $0.contains("$0.0054") }, "\(listed.stdout)")
    }

    /// The job's own lower `budget` applies; a malformed one fails the job
    /// `invalid_spec` before anything of it runs.
    @Test func theJobsOwnBudgetIsEnforcedAndAMalformedOneFailsAtOnce() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let rig = try await ClineRig(h, mode: "v3-loop")
        defer { rig.stop() }
        let requests = rig.requests
        let lower = try await h.seed(tinySpec, project: "lower")
        let bad = try await h.seed(tinySpec, project: "bad")
        let budgets: [(String, JSONValue)] = [(lower, ["requests": 1]), (bad, ["usd": "lots"])]
        for (id, budget) in budgets {
            _ = try await h.store.pool.run("jobs") { coll in
                try CollectionOps.update(coll, filter: ["_id": .string(id)], update: ["$set": ["budget": budget]])
            }
        }
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: rig.env(model: "gpt-4.1", attempts: 3, ["JOB_BUDGET_REQUESTS": "5"]))
        #expect(r.status == 0)
        let capped = try await h.job(lower)
        #expect(capped["error"]?["code"]?.stringValue == "budget_exceeded", "\(capped.jsonString)")
        #expect(capped["error"]?["message"]?.stringValue?.hasPrefix("budget exceeded: budget.requests=1 requests spent") == true)
        let refused = try await h.job(bad)
        #expect(refused["status"]?.stringValue == "failed" && refused["error"]?["code"]?.stringValue == "invalid_spec",
                "\(refused.jsonString)")
        #expect(refused["error"]?["message"]?.stringValue == "budget.usd must be a number greater than 0")
        #expect(try FixtureServer.jsonLines(requests).count == 1, "only the capped job's one call")
    }
}

/// A call still streaming when the budget refuses the next one may finish:
/// the job's message names the overrun at its end, that stream's cost included.
@Suite struct BudgetOverrunTests {
    @Test func aStreamThatFinishesAfterTheRefusalCountsInTheOverrun() {
        let report = ProxyReport()
        let control = ChildControl()
        let limit = BudgetLimit(0.004, setting: "JOB_BUDGET_USD", unit: .usd)
        func call(_ cost: Double, streamed: Bool) -> EgressEvent {
            EgressEvent(.usage, usage: CallUsage(atMs: 0, route: "provider", model: "gpt-4.1", status: 200, cost: cost,
                                                  durationMs: 5, metered: true, streamed: streamed))
        }
        // Two calls end ($0.0054: the limit reached); the next is refused while a stream is still under way.
        _ = report.take(call(0.0027, streamed: false), control: control)
        _ = report.take(call(0.0027, streamed: false), control: control)
        _ = report.take(EgressEvent(.budget, budget: BudgetNotice(limit: limit, spent: 0.0054, percent: 135, exceeded: true)),
                        control: control)
        #expect(control.reason == .budgetExceeded)
        #expect(report.budgetFailure?.message.hasPrefix("budget exceeded: JOB_BUDGET_USD=$0.0040 spent ($0.0054, over by $0.0014") == true)
        // The stream ends after the refusal: its cost is in the overrun.
        _ = report.take(call(0.0027, streamed: true), control: control)
        #expect(report.budgetFailure?.code == .budgetExceeded)
        #expect(report.budgetFailure?.message == "budget exceeded: JOB_BUDGET_USD=$0.0040 spent ($0.0081, over by $0.0041 from "
            + "calls already under way, each bounded by its own max_tokens); the next model call was refused and the agent stopped",
                "\(report.budgetFailure?.message ?? "-")")
    }
}
