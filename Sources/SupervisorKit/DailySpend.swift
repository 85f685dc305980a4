import Foundation
import JobStore
import Logging
import RunnerCore

/// One job's share of the daily budgets (USER_DAILY_BUDGET_USD,
/// PROJECT_DAILY_BUDGET_USD): before the job starts, whether its user or
/// project has spent its budget today (`overToday`); while it runs, each
/// model call's cost added to the shared counters in MongoDB (`account`),
/// the 50 % and 80 % lines, and the stop once a budget is spent. The egress
/// proxy admits the next call only once this one is counted (`SharedSpendAnswer`).
final class DailySpend: Sendable {
    let store: JobStore
    let limits: [(key: SpendKey, limit: BudgetLimit)]
    private struct State {
        var accounted = 0
        var exhausted: BudgetNotice?
    }
    private let state = Locked(State())

    /// Nil when no daily budget applies to `job`.
    init?(_ settings: DailyBudgetSettings, job: ClaimedJob, store: JobStore, now: Date = Date()) {
        let day = DailyBudgetSettings.day(now)
        let project = job.projectId.flatMap { $0.isNull ? nil : JobStore.idText($0) }
        limits = settings.limits(userId: job.job.userId, projectId: project, day: day)
        guard !limits.isEmpty else { return nil }
        self.store = store
    }

    /// The first budget already spent today, as the failure a job that does
    /// not start gets; nil when none is.
    func overToday() async throws -> JobFailure? {
        let spent = try await store.spend(of: limits.map(\.key))
        for (key, limit) in limits {
            let total = spent[key] ?? 0
            if total >= limit.value { return Self.failure(key, limit, total, running: false) }
        }
        return nil
    }

    /// Counts one call (`usage`, from the job's egress proxy) and answers
    /// the proxy. Returns the job-log lines; a budget spent stops the job
    /// through `report` (`daily_budget_exceeded`). A server answer that
    /// cannot be believed, or none, counts as a budget spent: the job stops,
    /// saying why (its spend could not be shared).
    func account(_ call: CallUsage?, report: ProxyReport, control: ChildControl, logger: Logger) async -> (lines: [String], answer: SharedSpendAnswer) {
        var lines: [String] = []
        let cost = call?.cost ?? 0
        // Every call's cost is counted, one made after a budget was spent too (it was spent).
        if cost > 0 {
            for (key, limit) in limits {
                do {
                    let total = try await store.addSpend(cost, to: key)
                    let before = total - cost
                    for percent in [50, 80] where before < limit.value * Double(percent) / 100
                        && total >= limit.value * Double(percent) / 100 && total < limit.value {
                        lines.append("budget: \(percent)% of \(limit.setting)=\(UsageTotals.dollars(limit.value)) for \(key.name) "
                            + "spent today (\(UsageTotals.dollars(total)), UTC \(key.day))")
                    }
                    if total >= limit.value {
                        let failure = Self.failure(key, limit, total, running: true)
                        exhaust(BudgetNotice(limit: limit, spent: total, percent: 100, exceeded: true, kind: .daily), failure,
                                report: report, control: control, lines: &lines)
                    }
                } catch {
                    logger.error("cannot count the daily spend; stopping the job", metadata: ["error": "\(error)"])
                    let failure = JobFailure(.dailyBudgetExceeded, "the daily spend of \(key.name) could not be counted "
                        + "(\(error)); the job was stopped, since its spend could not be shared")
                    exhaust(BudgetNotice(limit: limit, spent: 0, percent: 100, exceeded: true, kind: .daily), failure,
                            report: report, control: control, lines: &lines)
                }
            }
        }
        let answer = state.withLock { s -> SharedSpendAnswer in
            s.accounted += 1
            return SharedSpendAnswer(accounted: s.accounted, exhausted: s.exhausted)
        }
        return (lines, answer)
    }

    private func exhaust(_ notice: BudgetNotice, _ failure: JobFailure, report: ProxyReport, control: ChildControl,
                         lines: inout [String]) {
        let first = state.withLock { s -> Bool in
            guard s.exhausted == nil else { return false }
            s.exhausted = notice
            return true
        }
        guard first else { return }
        lines.append(failure.message)
        report.stop(failure, control: control)
    }

    /// The failure of a job whose user or project spent its daily budget.
    static func failure(_ key: SpendKey, _ limit: BudgetLimit, _ total: Double, running: Bool) -> JobFailure {
        let name = "\(limit.setting)=\(UsageTotals.dollars(limit.value)) for \(key.name)"
        let over = total - limit.value
        return JobFailure(.dailyBudgetExceeded, "daily budget exceeded: \(name) spent (\(UsageTotals.dollars(total)) on UTC \(key.day)"
            + (running && over > 0 ? ", over by \(UsageTotals.dollars(over)) from calls already under way" : "") + "); "
            + (running ? "the next model call is refused and the agent stopped" : "the job did not start"))
    }
}
