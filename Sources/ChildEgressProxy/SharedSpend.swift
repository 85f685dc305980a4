import Foundation
import RunnerCore

/// The daily budgets the job shares with other jobs (its user's, its
/// project's), which the supervisor counts in MongoDB. Before a model call
/// starts, the proxy asks the supervisor to reserve the call's bound (its
/// worst-case cost, `CallBound`) in every counter (a `reserve` event) and
/// waits for the answer (`SharedSpendAnswer` on its stdin); the call starts
/// only once it is reserved. The call's `usage` event names the reservation,
/// which the supervisor then settles at the call's cost. So every supervisor
/// sees the worst case of every call under way, and a daily budget is passed
/// by at most one call's bound (docs/budgets.md).
final class SharedSpend: Sendable {
    private struct State {
        var next = 0
        /// The reservations waiting for the supervisor's answer, and their answers once in.
        var waiting: Set<Int> = []
        var answers: [Int: SharedSpendAnswer.Body] = [:]
    }
    private let state = Locked(State())
    private let changed = NSCondition()
    private let out: EventWriter
    /// The lowest daily budget that applies, in dollars (the most an injected output limit may buy).
    let budgetUSD: Double
    /// How long a call waits for the supervisor's answer before it is refused.
    let answerTimeout: Double

    init(budgetUSD: Double, out: EventWriter, answerTimeout: Double = 30) {
        self.budgetUSD = budgetUSD
        self.out = out
        self.answerTimeout = answerTimeout
    }

    /// The supervisor's answer to one reservation (one that no call waits
    /// for any more is dropped).
    func answer(_ a: SharedSpendAnswer) {
        changed.lock()
        state.withLock { s in
            if s.waiting.contains(a.spend.reservation) { s.answers[a.spend.reservation] = a.spend }
        }
        changed.broadcast()
        changed.unlock()
    }

    /// Reserves `usd` (one call's bound) and waits for the supervisor's
    /// answer: the reservation, or the daily budget that refuses the call.
    /// No answer within `answerTimeout` refuses it too (`dailyUncounted`):
    /// the spend cannot be shared.
    func reserve(_ usd: Double) -> Admission {
        let reservation = state.withLock { s -> SpendReservation in
            s.next += 1
            s.waiting.insert(s.next)
            return SpendReservation(id: s.next, usd: usd)
        }
        out.emit(EgressEvent(.reserve, reservation: reservation))
        let deadline = Date().addingTimeInterval(answerTimeout)
        changed.lock()
        defer { changed.unlock() }
        while true {
            let answer = state.withLock { s -> SharedSpendAnswer.Body? in
                guard let a = s.answers.removeValue(forKey: reservation.id) else { return nil }
                s.waiting.remove(reservation.id)
                return a
            }
            if let answer { return answer.refusal.map { .refused($0) } ?? .admitted(reservation) }
            if !changed.wait(until: deadline) {
                state.withLock { s in
                    s.waiting.remove(reservation.id)
                    s.answers[reservation.id] = nil
                }
                let limit = BudgetLimit(0, setting: "USER_DAILY_BUDGET_USD/PROJECT_DAILY_BUDGET_USD", unit: .usd)
                return .refused(BudgetNotice(limit: limit, spent: 0, percent: 100, exceeded: true, kind: .dailyUncounted))
            }
        }
    }
}
