import Foundation
import RunnerCore

/// What one job's egress proxy reported, gathered as its events arrive: the
/// model calls' usage (`metadata.usage`), the budget's warnings, and the
/// budget's refusal, which stops the job (`budget_exceeded`, or
/// `daily_budget_exceeded` for a daily budget's: `BudgetNotice.Kind`).
final class ProxyReport: Sendable {
    private struct State {
        var usage = UsageTotals()
        var budgetFailure: JobFailure?
        /// The proxy's refusal for the job's own budget: its message is
        /// recomputed at the end, with the calls that were streaming then.
        var refusal: BudgetNotice?
    }
    private let state = Locked(State())

    /// Takes one event: returns the job-log line for it (nil: none) and
    /// stops the child through `control` when a model call was refused for the budget.
    func take(_ event: EgressEvent, control: ChildControl) -> String? {
        switch event.kind {
        // The daily budgets' reservations are `DailySpend`'s.
        case .ready, .reserve: return nil
        // In the job's event stream only: the log keeps the refusals.
        case .allowed: return nil
        case .denied:
            RunnerMetrics.egressDenied(reason: event.reason ?? "unknown")
        case .usage:
            guard let call = event.usage else { return nil }
            state.withLock { $0.usage.add(call) }
            RunnerMetrics.modelCall(call)
        case .budget:
            guard let notice = event.budget else { return nil }
            if notice.exceeded {
                // A daily budget's refusal was already decided by the supervisor (`stop`): that failure stays.
                guard stop(notice.failure, control: control) else { return nil }
                if notice.kind == .job { state.withLock { $0.refusal = notice } }
            }
        case .retry: RunnerMetrics.providerRetry()
        case .log: break
        }
        return event.logLine
    }

    /// Stops the job for a spent budget (the job's own, or a daily one:
    /// `DailySpend`); the first failure wins. False when one was set before.
    @discardableResult
    func stop(_ failure: JobFailure, control: ChildControl) -> Bool {
        let first = state.withLock { s -> Bool in
            guard s.budgetFailure == nil else { return false }
            s.budgetFailure = failure
            return true
        }
        guard first else { return false }
        RunnerMetrics.budgetStop()
        control.stop(.budgetExceeded)
        return true
    }

    /// The calls' totals; nil when there was none.
    var usage: UsageTotals? { state.withLock { $0.usage.requests > 0 ? $0.usage : nil } }

    /// The failure of a job stopped for its budget. For the job's own
    /// budget, the spend is the one known now: the calls already under way
    /// when the next one was refused (a stream may finish) count in the
    /// overrun the message names.
    var budgetFailure: JobFailure? {
        state.withLock { s in
            guard var failure = s.budgetFailure, let refusal = s.refusal else { return s.budgetFailure }
            let now = switch refusal.limit.unit {
            case .usd: s.usage.pricedCost
            case .tokens: Double(s.usage.tokens)
            case .requests: Double(s.usage.requests)
            }
            let spent = max(refusal.spent, now)
            failure.message = BudgetNotice(limit: refusal.limit, spent: spent, percent: BudgetNotice.percent(spent, refusal.limit),
                                           exceeded: true, kind: refusal.kind).message
            return failure
        }
    }
}
