import Foundation
import JobStore
import Logging
import RunnerCore

/// One job's share of the daily budgets (USER_DAILY_BUDGET_USD,
/// PROJECT_DAILY_BUDGET_USD): before the job starts, whether its user or
/// project has spent its budget today (`overToday`); while it runs, each
/// model call's bound reserved in the shared counters in MongoDB before the
/// call starts (the egress proxy's `reserve`, answered with a
/// `SharedSpendAnswer`) and settled at its cost once it ends (its `usage`),
/// the 50 % and 80 % lines, and the stop once a budget is spent. The day is
/// each call's own (UTC, when it asks): a job running past midnight charges
/// the new day.
final class DailySpend: Sendable {
    let store: JobStore
    let settings: DailyBudgetSettings
    let userId: String?
    let projectId: String?
    /// A reserved call: its bound and the counters it is reserved in (settled with its `usage`).
    private struct Open {
        let usd: Double
        let limits: [(key: SpendKey, limit: BudgetLimit)]
    }
    private struct State {
        var exhausted: BudgetNotice?
        var open: [Int: Open] = [:]
    }
    private let state = Locked(State())

    /// Nil when no daily budget applies to `job`.
    init?(_ settings: DailyBudgetSettings, job: ClaimedJob, store: JobStore) {
        userId = job.job.userId
        projectId = job.projectId.flatMap { $0.isNull ? nil : JobStore.idText($0) }
        guard !settings.limits(userId: userId, projectId: projectId, day: "").isEmpty else { return nil }
        self.settings = settings
        self.store = store
    }

    /// The limits that apply on the UTC day of `now`.
    func limits(_ now: Date = Date()) -> [(key: SpendKey, limit: BudgetLimit)] {
        settings.limits(userId: userId, projectId: projectId, day: DailyBudgetSettings.day(now))
    }

    /// The first budget already spent today (its counter, reservations of
    /// calls under way included, at its limit), as the failure a job that
    /// does not start gets; nil when none is.
    func overToday(_ now: Date = Date()) async throws -> JobFailure? {
        let limits = limits(now)
        let spent = try await store.spend(of: limits.map(\.key))
        for (key, limit) in limits {
            let counter = spent[key] ?? DayCounter(usd: 0, committed: 0)
            if max(counter.usd, counter.committed) >= limit.value { return Self.failure(key, limit, counter, running: false) }
        }
        return nil
    }

    /// One event of the job's egress proxy: a `reserve` is answered (the
    /// answer for the proxy), the `usage` of a reserved call settles it.
    /// Returns the job-log lines; a budget spent stops the job through
    /// `report` (`daily_budget_exceeded`). A server answer that cannot be
    /// believed, or none, counts as a budget spent: the job stops, saying
    /// why (its spend could not be shared).
    func take(_ event: EgressEvent, report: ProxyReport, control: ChildControl, logger: Logger,
              now: Date = Date()) async -> (lines: [String], answer: SharedSpendAnswer?) {
        guard let reservation = event.reservation else { return ([], nil) }
        var lines: [String] = []
        switch event.kind {
        case .reserve:
            let refusal = await reserve(reservation, now: now, report: report, control: control, logger: logger, lines: &lines)
            return (lines, SharedSpendAnswer(reservation: reservation.id, refusal: refusal))
        case .usage:
            await settle(reservation.id, cost: event.usage?.cost, report: report, control: control, logger: logger, lines: &lines)
            return (lines, nil)
        default: return ([], nil)
        }
    }

    /// Reserves one call's bound in every counter; nil when reserved, else
    /// the notice that refuses the call (what was reserved is given back).
    private func reserve(_ r: SpendReservation, now: Date, report: ProxyReport, control: ChildControl, logger: Logger,
                         lines: inout [String]) async -> BudgetNotice? {
        if let exhausted = state.withLock({ $0.exhausted }) { return exhausted }
        var reserved: [(key: SpendKey, limit: BudgetLimit)] = []
        let usd = r.usd.isFinite ? max(0, r.usd) : Double.greatestFiniteMagnitude
        for (key, limit) in limits(now) {
            do {
                let (ok, counter) = try await store.reserve(usd, on: key, limit: limit.value)
                if ok {
                    reserved.append((key, limit))
                    continue
                }
                await release(usd, reserved, logger: logger)
                exhaust(BudgetNotice(limit: limit, spent: counter.usd, percent: 100, exceeded: true, kind: .daily),
                        Self.failure(key, limit, counter, running: true), report: report, control: control, lines: &lines)
            } catch {
                await release(usd, reserved, logger: logger)
                uncounted(key, limit, error, report: report, control: control, logger: logger, lines: &lines)
            }
            return state.withLock { $0.exhausted }
        }
        state.withLock { $0.open[r.id] = Open(usd: usd, limits: reserved) }
        return nil
    }

    /// Settles a reserved call at its cost (an unknown cost counts its bound).
    private func settle(_ id: Int, cost: Double?, report: ProxyReport, control: ChildControl, logger: Logger,
                        lines: inout [String]) async {
        guard let open = state.withLock({ $0.open.removeValue(forKey: id) }) else { return }
        let actual = cost.map { $0.isFinite ? max(0, $0) : open.usd } ?? open.usd
        for (key, limit) in open.limits {
            do {
                let counter = try await store.settle(key, reserved: open.usd, actual: actual)
                let total = counter.usd, before = total - actual
                for percent in [50, 80] where before < limit.value * Double(percent) / 100
                    && total >= limit.value * Double(percent) / 100 && total < limit.value {
                    lines.append("budget: \(percent)% of \(limit.setting)=\(UsageTotals.dollars(limit.value)) for \(key.name) "
                        + "spent today (\(UsageTotals.dollars(total)), UTC \(key.day))")
                }
                if total >= limit.value {
                    exhaust(BudgetNotice(limit: limit, spent: total, percent: 100, exceeded: true, kind: .daily),
                            Self.failure(key, limit, counter, running: true), report: report, control: control, lines: &lines)
                }
            } catch {
                uncounted(key, limit, error, report: report, control: control, logger: logger, lines: &lines)
            }
        }
    }

    /// Gives back what one call reserved before another counter refused it
    /// (a failure is logged: the reservation stays counted, on the safe side).
    private func release(_ usd: Double, _ reserved: [(key: SpendKey, limit: BudgetLimit)], logger: Logger) async {
        for (key, _) in reserved {
            do { try await store.release(usd, on: key) } catch {
                logger.warning("cannot give back a daily spend reservation", metadata: ["key": "\(key.documentId)", "error": "\(error)"])
            }
        }
    }

    private func uncounted(_ key: SpendKey, _ limit: BudgetLimit, _ error: any Error, report: ProxyReport, control: ChildControl,
                           logger: Logger, lines: inout [String]) {
        logger.error("cannot count the daily spend; stopping the job", metadata: ["error": "\(error)"])
        let failure = JobFailure(.dailyBudgetExceeded, "the daily spend of \(key.name) could not be counted "
            + "(\(error)); the job was stopped, since its spend could not be shared")
        exhaust(BudgetNotice(limit: limit, spent: 0, percent: 100, exceeded: true, kind: .daily), failure,
                report: report, control: control, lines: &lines)
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
    static func failure(_ key: SpendKey, _ limit: BudgetLimit, _ counter: DayCounter, running: Bool) -> JobFailure {
        let name = "\(limit.setting)=\(UsageTotals.dollars(limit.value)) for \(key.name)"
        let over = counter.usd - limit.value
        let underWay = counter.committed - counter.usd
        return JobFailure(.dailyBudgetExceeded, "daily budget exceeded: \(name) spent (\(UsageTotals.dollars(counter.usd)) on UTC "
            + key.day + (running && over > 0 ? ", over by \(UsageTotals.dollars(over)) from calls already under way" : "")
            + (underWay > 1e-9 ? ", \(UsageTotals.dollars(underWay)) more reserved by calls under way" : "") + "); "
            + (running ? "the next model call is refused and the agent stopped" : "the job did not start"))
    }
}
