#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import JobStore
import RunnerCore
@testable import SupervisorKit
import Testing

/// Per-user and per-project daily budgets, counted in MongoDB with atomic
/// increments that every supervisor shares: two real supervisors, one
/// SecantusDB, the fake provider on loopback with a known cost per call.
@Suite(.serialized) struct DailyBudgetTests: QueueFixtures {
    /// One chat completion of gpt-4.1 at the fake provider: 388 input and
    /// 81 output tokens, $0.002712.
    static let callCost = 0.002712

    /// A user's $0.01 a day, shared by two supervisors running that user's
    /// jobs at once: every call is counted once, the spend passes the budget
    /// by at most one call per job running when it was reached (each job's
    /// proxy admits no call before its last one is counted), the running jobs
    /// end `daily_budget_exceeded`, and the later ones do not start
    /// (DAILY_BUDGET_ACTION=fail).
    @Test func aUsersDailyBudgetIsSharedByTwoSupervisors() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let requests = h.root + "/provider.jsonl"
        let provider = try await FixtureServer("fake_provider.py", ["ok", requests])
        defer { provider.stop() }
        let cline = try Containment.install("fake_cline.py", in: h.root, prefix: "MODE = \"v3-loop\"")
        var ids: [String] = []
        for i in 0..<4 {
            // Projects of their own, so that the user's jobs run at once.
            let id = try await h.seed(tinySpec, project: "p\(i)")
            _ = try await h.store.pool.run("jobs") { coll in
                try CollectionOps.update(coll, filter: ["_id": .string(id)], update: ["$set": ["userId": "u1"]])
            }
            ids.append(id)
        }
        let env = ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "1",
                   "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_MODEL": "gpt-4.1",
                   "CLINE_API_KEY": ContainmentTests.realKey, "RUNNER_CONCURRENCY": "1",
                   "USER_DAILY_BUDGET_USD": "0.01", "DAILY_BUDGET_ACTION": "fail", "CHECKPOINT_ON": "none"]
        let first = try h.startSupervisor(env, args: ["--exit-when-idle"], log: h.root + "/s1.log")
        let second = try h.startSupervisor(env, args: ["--exit-when-idle"], log: h.root + "/s2.log")
        defer { for p in [first, second] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        #expect(try await waitExit(first, timeout: 180) == 0)
        #expect(try await waitExit(second, timeout: 180) == 0)

        let calls = try FixtureServer.jsonLines(requests).count
        let day = DailyBudgetSettings.day()
        let counter = try #require(try await h.store.pool.run("budget_days") { coll in
            try CollectionOps.find(coll, filter: ["_id": .string("user/\(day)/u1")])
        }.first)
        let usd = try #require(counter["usd"]?.numberValue)
        #expect(counter["calls"]?.intValue == Int64(calls), "every call counted once: \(counter.jsonString), \(calls) calls")
        #expect(abs(usd - Double(calls) * Self.callCost) < 1e-9, "\(usd) for \(calls) calls")
        #expect(usd >= 0.01, "the budget was reached")
        var ran = 0
        for id in ids {
            let job = try await h.job(id)
            let error = job["error"]
            #expect(job["status"]?.stringValue == "failed" && error?["code"]?.stringValue == "daily_budget_exceeded",
                    "\(job.jsonString)")
            #expect(error?["retryable"] == false)
            let message = error?["message"]?.stringValue ?? ""
            #expect(message.hasPrefix("daily budget exceeded: USER_DAILY_BUDGET_USD=$0.0100 for user u1 spent"), "\(message)")
            if message.hasSuffix("the job did not start") {
                #expect(job["metadata"]?["usage"] == nil, "a job that did not start made no call")
            } else {
                ran += 1
            }
        }
        #expect((1...2).contains(ran), "the jobs running when the budget was reached: \(ran)")
        // The overrun: at most one call per job running then (each admitted before the budget was spent).
        #expect(usd < 0.01 + Double(ran) * Self.callCost + 1e-9, "\(usd) with \(ran) job(s) running")
        // The 50 % and 80 % lines, each in the log of the job whose call crossed it.
        var lines: [String] = []
        for id in ids { lines += try await h.job(id)["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        for percent in [50, 80] {
            #expect(lines.filter { $0.hasPrefix("budget: \(percent)% of USER_DAILY_BUDGET_USD=$0.0100 for user u1 spent today") }
                .count == 1, "\(lines)")
        }
    }

    /// The checked increment: an answer that is not the counter asked for,
    /// or whose total is below the increment itself, is not believed.
    @Test func anIncrementsAnswerIsChecked() throws {
        let key = SpendKey(scope: .user, id: "u1", day: "2026-12-07")
        #expect(try JobStore.checkedTotal(["_id": "user/2026-12-07/u1", "usd": .double(0.5)], key: key, added: 0.25) == 0.5)
        #expect(try JobStore.checkedTotal(["_id": "user/2026-12-07/u1", "usd": 1], key: key, added: 0.25) == 1)
        let wrong: [JSONValue?] = [nil, ["_id": "user/2026-12-07/u2", "usd": .double(0.5)], ["_id": "user/2026-12-07/u1"],
                                   ["_id": "user/2026-12-07/u1", "usd": .double(0.1)], ["_id": "user/2026-12-07/u1", "usd": "0.5"]]
        for answer in wrong {
            #expect(throws: ServerContradiction.self, "\(answer?.jsonString ?? "nil")") {
                try JobStore.checkedTotal(answer, key: key, added: 0.25)
            }
        }
    }

    /// The proxy's refusal when the supervisor did not answer a daily
    /// budget's reservation in time: a limit of 0 whose percent is total
    /// (100, never 0/0, whose Int conversion traps), and a kind of its own that
    /// ends the job `daily_budget_exceeded`, not `budget_exceeded`.
    @Test func anUncountedDailySpendEndsTheJobDailyBudgetExceeded() {
        let limit = BudgetLimit(0, setting: "USER_DAILY_BUDGET_USD/PROJECT_DAILY_BUDGET_USD", unit: .usd)
        #expect(BudgetNotice.percent(0, limit) == 100)
        #expect(BudgetNotice.percent(.nan, BudgetLimit(1, setting: "JOB_BUDGET_USD", unit: .usd)) == 100)
        #expect(BudgetNotice.percent(.infinity, BudgetLimit(.infinity, setting: "JOB_BUDGET_USD", unit: .usd)) == 100)
        let report = ProxyReport()
        let control = ChildControl()
        let notice = BudgetNotice(limit: limit, spent: 0, percent: 100, exceeded: true, kind: .dailyUncounted)
        _ = report.take(EgressEvent(.budget, budget: notice), control: control)
        #expect(control.reason == .budgetExceeded, "the job is stopped")
        let failure = report.budgetFailure
        #expect(failure?.code == .dailyBudgetExceeded, "\(String(describing: failure))")
        #expect(failure?.message.hasPrefix("daily budget exceeded: the spend of USER_DAILY_BUDGET_USD/PROJECT_DAILY_BUDGET_USD "
            + "could not be counted") == true, "\(failure?.message ?? "-")")
    }

    /// A limit's unit is its own typed field, never read from the setting's
    /// name: a limit in dollars named anything is shown in dollars.
    @Test func aLimitsUnitIsTyped() {
        let odd = BudgetLimit(2, setting: "USER_DAILY_BUDGET_USD (no count)", unit: .usd)
        #expect(BudgetNotice(limit: odd, spent: 1, percent: 50, exceeded: false).message
            == "budget: 50% of USER_DAILY_BUDGET_USD (no count)=$2.0000 spent ($1.0000)")
        #expect(BudgetUnit.tokens.amount(1200) == "1200 tokens")
        #expect(BudgetUnit.requests.amount(3) == "3 requests")
    }
}
