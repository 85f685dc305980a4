import Foundation
import RunnerCore

/// Whether a model call may start: with its reservation against the daily
/// budgets when they apply, or the notice of the limit that refuses it.
enum Admission {
    case admitted(SpendReservation?)
    case refused(BudgetNotice)
}

/// The job's spend, shared by the proxy's connections: every model call is
/// admitted here first and recorded here when it ends. Once a limit of the
/// job's budget is reached, the next call is refused (`admit`); a call
/// already under way finishes, so the spend can pass a limit by what the
/// calls in flight cost (each bounded by its own `max_tokens`).
final class Meter: Sendable {
    let budget: JobBudget
    let prices: PriceTable
    private struct State {
        var totals = UsageTotals()
        /// Calls admitted (in flight or ended): what JOB_BUDGET_REQUESTS counts.
        var started = 0
        /// Thresholds already reported, per setting.
        var reported: [String: Int] = [:]
        var refusals = 0
    }
    private let state = Locked(State())

    /// The thresholds reported, in percent of a limit.
    static let thresholds = [50, 80, 100]

    /// The daily budgets shared with other jobs (nil: none apply).
    let shared: SharedSpend?

    init(budget: JobBudget?, prices: PriceTable?, shared: SharedSpend? = nil) {
        self.budget = budget ?? JobBudget()
        self.prices = prices ?? .shipped
        self.shared = shared
    }

    /// Admits one model call: first against the job's own budget, then,
    /// with daily budgets, by reserving `bound` (the call's worst-case cost)
    /// with the supervisor, which may refuse it. A refused call is not
    /// started; the notice says which limit refused it (`exceeded` set; its
    /// kind decides how the job ends).
    func admit(bound: Double?) -> Admission {
        let refused = state.withLock { s -> BudgetNotice? in
            for (limit, spent) in Self.spends(budget, s.totals, started: s.started) where spent >= limit.value {
                s.refusals += 1
                return BudgetNotice(limit: limit, spent: spent, percent: Self.percent(spent, limit), exceeded: true)
            }
            s.started += 1
            return nil
        }
        if let refused { return .refused(refused) }
        guard let shared else { return .admitted(nil) }
        // The unpriced are refused before (`MeteredCall.unpricedRefusal`); a bound unknown counts as the whole day's.
        let admission = shared.reserve(bound ?? shared.budgetUSD)
        if case .refused = admission { state.withLock { $0.started -= 1 } }
        return admission
    }

    /// What is left of the job's own budget in dollars and tokens (nil: no such limit), and of
    /// the daily one in dollars as far as the proxy knows (the lowest daily budget: its counters are the supervisor's).
    var remaining: (usd: Double?, tokens: Double?) {
        state.withLock { s in
            let job = budget.usd.map { max(0, $0.value - s.totals.pricedCost) }
            let usd = [job, shared?.budgetUSD].compactMap { $0 }.min()
            return (usd, budget.tokens.map { max(0, $0.value - Double(s.totals.tokens)) })
        }
    }

    /// Records an ended call; returns the thresholds it crossed.
    func record(_ call: CallUsage) -> [BudgetNotice] {
        state.withLock { s in
            s.totals.add(call)
            var notices: [BudgetNotice] = []
            for (limit, spent) in Self.spends(budget, s.totals, started: s.started) {
                let percent = Self.percent(spent, limit)
                guard let crossed = Self.thresholds.last(where: { $0 <= percent }),
                      crossed > s.reported[limit.setting, default: 0] else { continue }
                s.reported[limit.setting] = crossed
                notices.append(BudgetNotice(limit: limit, spent: spent, percent: crossed, exceeded: false))
            }
            return notices
        }
    }

    /// The calls' cost by the price table, or nil for a model without a price.
    func cost(model: String?, input: Int, output: Int, cacheRead: Int, cacheWrite: Int) -> Double? {
        model.flatMap(prices.price)?.cost(input: input, output: output, cacheRead: cacheRead, cacheWrite: cacheWrite)
    }

    var totals: UsageTotals { state.withLock { $0.totals } }

    /// Each limit with what is spent of it. Requests count when started,
    /// dollars and tokens when their calls end.
    static func spends(_ b: JobBudget, _ t: UsageTotals, started: Int) -> [(BudgetLimit, Double)] {
        var out: [(BudgetLimit, Double)] = []
        if let l = b.requests { out.append((l, Double(started))) }
        if let l = b.tokens { out.append((l, Double(t.tokens))) }
        if let l = b.usd { out.append((l, t.pricedCost)) }
        return out
    }

    static func percent(_ spent: Double, _ limit: BudgetLimit) -> Int { BudgetNotice.percent(spent, limit) }
}
