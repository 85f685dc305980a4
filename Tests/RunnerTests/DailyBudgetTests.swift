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
    /// One chat completion of gpt-4.1 at the fake provider: 388 input, 512
    /// cache-read and 210 output tokens, $0.002712.
    static let callCost = 0.002712

    /// A user's $0.02 a day, shared by two supervisors whose jobs of that
    /// user run at once, each making 6 model calls at a time (fake_cline.py's
    /// v3-parallel: it waits at a gate the test opens once both supervisors
    /// have claimed a job). Each call reserves its bound in the user's counter
    /// before it starts, so that the day's total never passes the budget by
    /// more than one call's bound (without the reservations, the 12 calls
    /// the two jobs start at once all went through: $0.0325 for a bound of
    /// $0.0046). Every job ends `daily_budget_exceeded` (the later ones that
    /// find it spent do not start: DAILY_BUDGET_ACTION=fail).
    @Test func aUsersDailyBudgetIsSharedByTwoSupervisors() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let rig = try await ClineRig(h, mode: "v3-parallel")
        defer { rig.stop() }
        var ids: [String] = []
        for i in 0..<4 {
            // Projects of their own, so that the user's jobs run at once.
            let id = try await h.seed(tinySpec, project: "p\(i)")
            _ = try await h.store.pool.run("jobs") { coll in
                try CollectionOps.update(coll, filter: ["_id": .string(id)], update: ["$set": ["userId": "u1"]])
            }
            ids.append(id)
        }
        let limit = 0.02
        let env = rig.env(model: "gpt-4.1", attempts: 1, ["RUNNER_CONCURRENCY": "1", "USER_DAILY_BUDGET_USD": "\(limit)",
                                                           "DAILY_BUDGET_ACTION": "fail", "CHECKPOINT_ON": "none"])
        let logs = [h.root + "/s1.log", h.root + "/s2.log"]
        let first = try h.startSupervisor(env, args: ["--exit-when-idle"], log: logs[0])
        let second = try h.startSupervisor(env, args: ["--exit-when-idle"], log: logs[1])
        defer { for p in [first, second] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // No model call before both supervisors run a job: the fake clines wait at the gate.
        let bothClaimed = await eventually(120) {
            logs.allSatisfy { (try? String(contentsOfFile: $0, encoding: .utf8))?.contains("claimed") == true }
        }
        #expect(bothClaimed, "both supervisors claimed a job")
        #expect(try FixtureServer.jsonLines(rig.requests).filter { $0["method"] == "POST" }.isEmpty, "no call before the gate")
        FileManager.default.createFile(atPath: rig.requests + ".gate", contents: nil)
        #expect(try await waitExit(first, timeout: 180) == 0)
        #expect(try await waitExit(second, timeout: 180) == 0)

        let posts = try FixtureServer.jsonLines(rig.requests).filter { $0["method"] == "POST" }
        // One call's bound: its body's bytes at the dearest input price, its max_tokens (300) at the output price.
        let price = try #require(PriceTable.shipped.price("gpt-4.1"))
        let bytes = posts.compactMap { $0["bytes"]?.intValue }.max() ?? 0
        #expect(bytes >= 900, "a token is never less than a byte: the fake provider bills 900 prompt tokens")
        #expect(posts.allSatisfy { $0["max_tokens"]?.intValue == 300 })
        let bound = (Double(bytes) * max(price.input, price.cacheRead, price.cacheWrite) + 300 * price.output) / 1e6
        #expect(bound > Self.callCost, "the bound is the worst case")
        let day = DailyBudgetSettings.day()
        let counter = try #require(try await h.store.pool.run("budget_days") { coll in
            try CollectionOps.find(coll, filter: ["_id": .string("user/\(day)/u1")])
        }.first)
        let usd = try #require(counter["usd"]?.numberValue)
        let calls = Int(counter["calls"]?.intValue ?? -1)
        #expect(posts.count >= 2 && (1...posts.count).contains(calls), "\(counter.jsonString), \(posts.count) calls")
        // Each settled call at its cost; a call cut off when its job stopped
        // (its answer's usage never read) is counted at none (seen in 1 of 2
        // full runs: 6 of 8 calls settled).
        let settled = (usd / Self.callCost).rounded()
        #expect(abs(usd - settled * Self.callCost) < 1e-9 && settled >= 1 && Int(settled) <= calls,
                "each settled call at its cost: \(usd) for \(calls) calls")
        // The strict bound: never more than one call's bound over the budget, whoever made the calls.
        #expect(Double(posts.count) * Self.callCost < limit + bound, "\(posts.count) calls reached the provider, bound \(bound)")
        #expect(usd < limit + bound, "\(usd) spent, bound \(bound)")
        let committed = try #require(counter["committed"]?.numberValue)
        #expect(committed >= usd - 1e-9 && committed < limit + bound, "committed \(committed), spent \(usd)")
        var ran = 0
        for id in ids {
            let job = try await h.job(id)
            let error = job["error"]
            #expect(job["status"]?.stringValue == "failed" && error?["code"]?.stringValue == "daily_budget_exceeded",
                    "\(job.jsonString)")
            #expect(error?["retryable"] == false)
            let message = error?["message"]?.stringValue ?? ""
            #expect(message.hasPrefix("daily budget exceeded: USER_DAILY_BUDGET_USD=$0.0200 for user u1 spent"), "\(message)")
            if message.hasSuffix("the job did not start") {
                #expect(job["metadata"]?["usage"] == nil, "a job that did not start made no call")
            } else {
                ran += 1
            }
        }
        #expect(ran >= 2, "both gated jobs ran: \(ran)")
        // The 50 % line once, in the log of the job whose call crossed it; the 80 % line at most once.
        var lines: [String] = []
        for id in ids { lines += try await h.job(id)["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
        for percent in [50, 80] {
            let count = lines.filter { $0.hasPrefix("budget: \(percent)% of USER_DAILY_BUDGET_USD=$0.0200 for user u1 spent today") }.count
            #expect(percent == 50 ? count == 1 : count <= 1, "\(percent)%: \(lines)")
        }
    }

    /// The checked answers: a reservation's counter must be the one asked
    /// for, with `committed` at least the reservation and below the limit
    /// before it; a settlement's `usd` at least the call's cost.
    @Test func theCountersAnswersAreChecked() throws {
        let key = SpendKey(scope: .user, id: "u1", day: "2026-12-07")
        let id: JSONValue = "user/2026-12-07/u1"
        #expect(try JobStore.checkedReservation(["_id": id, "usd": .double(0.1), "committed": .double(0.5)], key: key, usd: 0.25, limit: 1)
            == DayCounter(usd: 0.1, committed: 0.5))
        let wrong: [JSONValue?] = [nil, ["_id": "user/2026-12-07/u2", "usd": 0, "committed": .double(0.5)], ["_id": id, "usd": 0],
                                   ["_id": id, "usd": 0, "committed": .double(0.1)], ["_id": id, "usd": 0, "committed": .double(1.5)],
                                   ["_id": id, "usd": 0, "committed": "0.5"], ["_id": id, "committed": .double(0.5)]]
        for answer in wrong {
            #expect(throws: ServerContradiction.self, "\(answer?.jsonString ?? "nil")") {
                try JobStore.checkedReservation(answer, key: key, usd: 0.25, limit: 1)
            }
        }
        #expect(try JobStore.checkedSettlement(["_id": id, "usd": .double(0.5), "committed": .double(0.7)], key: key, actual: 0.25).usd == 0.5)
        for answer in [nil, ["_id": id, "usd": .double(0.1), "committed": .double(0.7)], ["_id": "x", "usd": .double(0.5), "committed": .double(0.7)]] as [JSONValue?] {
            #expect(throws: ServerContradiction.self) { try JobStore.checkedSettlement(answer, key: key, actual: 0.25) }
        }
    }

    /// Each call charges its own UTC day: a job that runs past midnight
    /// reserves and settles its later calls on the new day's counter (the day
    /// was fixed when the job was claimed, so it charged yesterday).
    @Test func eachCallChargesItsOwnDay() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let job = ClaimedJob(document: ["_id": "j-midnight", "userId": "u-midnight"], token: "t")
        let daily = try #require(DailySpend(DailyBudgetSettings(userUSD: 1), job: job, store: h.store))
        let report = ProxyReport(), control = ChildControl(), logger = CapturedLog().logger
        // 2026-12-07T23:59:59Z, then two seconds later.
        let lastSecond = Date(timeIntervalSince1970: 1_796_687_999)
        for (id, now) in [(1, lastSecond), (2, lastSecond.addingTimeInterval(2))] {
            let reservation = SpendReservation(id: id, usd: 0.1)
            let (_, answer) = await daily.take(EgressEvent(.reserve, reservation: reservation), report: report, control: control,
                                               logger: logger, now: now)
            #expect(answer == SharedSpendAnswer(reservation: id, refusal: nil))
            let call = CallUsage(atMs: 0, route: "provider", model: "gpt-4.1", status: 200, cost: 0.05, durationMs: 5,
                                 metered: true, streamed: false)
            _ = await daily.take(EgressEvent(.usage, usage: call, reservation: reservation), report: report, control: control,
                                 logger: logger, now: now)
        }
        for day in ["2026-12-07", "2026-12-08"] {
            let counter = try await h.store.pool.run("budget_days") { coll in
                try CollectionOps.find(coll, filter: ["_id": .string("user/\(day)/u-midnight")])
            }.first
            #expect(counter?["calls"]?.intValue == 1, "\(day): \(counter?.jsonString ?? "no counter")")
            #expect(counter?["usd"]?.numberValue == 0.05 && counter?["committed"]?.numberValue.map { abs($0 - 0.05) < 1e-12 } == true,
                    "\(day): \(counter?.jsonString ?? "no counter")")
        }
        #expect(control.reason == nil, "no budget spent")
    }

    /// A call reserved in its user's counter but refused by its project's
    /// (at its limit) gives the user's reservation back, is refused with the
    /// project's budget named, stops the job `daily_budget_exceeded`, and
    /// every later reservation of the job is refused without a database request.
    @Test func aReservationOneCounterRefusesIsGivenBackInTheOther() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let day = DailyBudgetSettings.day()
        _ = try await h.store.pool.run("budget_days") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string("project/\(day)/p-full")],
                                     update: ["$set": ["usd": .double(0.75), "committed": .double(1.25), "calls": 3]], upsert: true)
        }
        let job = ClaimedJob(document: ["_id": "j-both", "userId": "u-both", "projectId": "p-full"], token: "t")
        let daily = try #require(DailySpend(DailyBudgetSettings(userUSD: 5, projectUSD: 1), job: job, store: h.store))
        let report = ProxyReport(), control = ChildControl(), logger = CapturedLog().logger
        let (lines, answer) = await daily.take(EgressEvent(.reserve, reservation: SpendReservation(id: 1, usd: 0.1)),
                                               report: report, control: control, logger: logger)
        let refusal = try #require(answer?.spend.refusal, "refused")
        #expect(refusal.kind == .daily && refusal.limit.setting == "PROJECT_DAILY_BUDGET_USD", "\(refusal)")
        #expect(control.reason == .budgetExceeded)
        let failure = try #require(report.budgetFailure)
        #expect(failure.code == .dailyBudgetExceeded)
        #expect(failure.message == "daily budget exceeded: PROJECT_DAILY_BUDGET_USD=$1.0000 for project p-full spent ($0.7500 on "
            + "UTC \(day), $0.5000 more reserved by calls under way); the next model call is refused and the agent stopped",
                "\(failure.message)")
        #expect(lines == [failure.message])
        let user = try await h.store.pool.run("budget_days") { coll in
            try CollectionOps.find(coll, filter: ["_id": .string("user/\(day)/u-both")])
        }.first
        #expect(user?["committed"]?.numberValue.map { abs($0) < 1e-12 } == true, "given back: \(user?.jsonString ?? "none")")
        let (_, again) = await daily.take(EgressEvent(.reserve, reservation: SpendReservation(id: 2, usd: 0.1)),
                                          report: report, control: control, logger: logger)
        #expect(again?.spend.refusal == refusal)
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
