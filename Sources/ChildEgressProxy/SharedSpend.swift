import Foundation
import RunnerCore

/// The daily budgets the job shares with other jobs (its user's, its
/// project's), which the supervisor counts in MongoDB: the proxy reports each
/// call's usage, and the supervisor answers once it has counted it
/// (`SharedSpendAnswer` on the proxy's stdin). A model call is admitted only
/// once every call reported before it is counted, and none once a daily
/// budget is spent: a job never starts a call on a spend it has not shared.
final class SharedSpend: Sendable {
    private struct State {
        var reported = 0
        var accounted = 0
        var exhausted: BudgetNotice?
    }
    private let state = Locked(State())
    private let changed = NSCondition()
    /// How long a call waits for the supervisor's count before it is refused.
    let answerTimeout: Double

    init(answerTimeout: Double = 30) {
        self.answerTimeout = answerTimeout
    }

    /// A call's `usage` event is about to be written (counted before it goes,
    /// so that no call admitted meanwhile misses it).
    func reporting() {
        state.withLock { $0.reported += 1 }
    }

    /// The supervisor's answer.
    func answer(_ a: SharedSpendAnswer) {
        changed.lock()
        state.withLock { s in
            s.accounted = max(s.accounted, a.spend.accounted)
            if s.exhausted == nil { s.exhausted = a.spend.exhausted }
        }
        changed.broadcast()
        changed.unlock()
    }

    /// Waits until every reported call is counted; returns the spent budget
    /// that refuses the call (nil: admitted). No answer within
    /// `answerTimeout` refuses it too: the spend cannot be shared.
    func admit() -> BudgetNotice? {
        let deadline = Date().addingTimeInterval(answerTimeout)
        changed.lock()
        defer { changed.unlock() }
        while true {
            let s = state.withLock { $0 }
            if let exhausted = s.exhausted { return exhausted }
            if s.accounted >= s.reported { return nil }
            if !changed.wait(until: deadline) {
                let limit = BudgetLimit(0, setting: "USER_DAILY_BUDGET_USD/PROJECT_DAILY_BUDGET_USD", unit: .usd)
                return BudgetNotice(limit: limit, spent: 0, percent: 100, exceeded: true, kind: .dailyUncounted)
            }
        }
    }
}
