import Foundation

/// What a job does when its user or project has spent its daily budget
/// before it starts (DAILY_BUDGET_ACTION).
public enum DailyBudgetAction: String, Sendable, Codable {
    /// Pending again, due at the next UTC midnight (the attempt not counted).
    case wait
    /// Failed `daily_budget_exceeded` (not retried).
    case fail
}

/// Per-user and per-project daily budgets (USER_DAILY_BUDGET_USD,
/// PROJECT_DAILY_BUDGET_USD, DAILY_BUDGET_ACTION), counted in MongoDB by
/// every supervisor (`budget_days`, docs/budgets.md).
public struct DailyBudgetSettings: Sendable, Equatable {
    public var userUSD: Double?
    public var projectUSD: Double?
    public var action: DailyBudgetAction

    public init(userUSD: Double? = nil, projectUSD: Double? = nil, action: DailyBudgetAction = .wait) {
        self.userUSD = userUSD
        self.projectUSD = projectUSD
        self.action = action
    }

    public var isEmpty: Bool { userUSD == nil && projectUSD == nil }

    /// The limits that apply to a job of `userId` in project `projectId`, on `day`.
    public func limits(userId: String?, projectId: String?, day: String) -> [(key: SpendKey, limit: BudgetLimit)] {
        var out: [(SpendKey, BudgetLimit)] = []
        if let userUSD, let userId { out.append((SpendKey(scope: .user, id: userId, day: day), BudgetLimit(userUSD, setting: "USER_DAILY_BUDGET_USD", unit: .usd))) }
        if let projectUSD, let projectId {
            out.append((SpendKey(scope: .project, id: projectId, day: day), BudgetLimit(projectUSD, setting: "PROJECT_DAILY_BUDGET_USD", unit: .usd)))
        }
        return out
    }

    /// The UTC day of `date`, `YYYY-MM-DD`.
    public static func day(_ date: Date = Date()) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
        return String(format: "%04d-%02d-%02d", c.year ?? 1970, c.month ?? 1, c.day ?? 1)
    }

    /// The next UTC midnight after `date` (a waiting job is due then).
    public static func nextDay(after date: Date = Date()) -> Date {
        let seconds = date.timeIntervalSince1970
        return Date(timeIntervalSince1970: (seconds / 86_400).rounded(.down) * 86_400 + 86_400)
    }
}

/// One counter of the shared daily spend: a user's or a project's, on one UTC day.
public struct SpendKey: Sendable, Hashable, Codable {
    public enum Scope: String, Sendable, Codable { case user, project }
    public var scope: Scope
    public var id: String
    /// `YYYY-MM-DD`, UTC.
    public var day: String

    public init(scope: Scope, id: String, day: String) {
        self.scope = scope
        self.id = id
        self.day = day
    }

    /// The counter's `_id` in `budget_days` (the unique index every server
    /// has: concurrent upserts of one key cannot make two documents). The id
    /// comes last, so that any id makes one key.
    public var documentId: String { "\(scope.rawValue)/\(day)/\(id)" }

    /// "user u1", "project p7", for messages.
    public var name: String { "\(scope.rawValue) \(LogBounds.clip(id, bytes: 64))" }
}

/// One model call's reservation against the daily budgets: the proxy asks
/// for its bound (`reserve` event) before the call starts, and names it again
/// on the call's `usage` event, with which the supervisor settles it.
public struct SpendReservation: Sendable, Codable, Equatable {
    /// The proxy's number for the call, from 1.
    public var id: Int
    /// The call's bound in dollars (its worst case, docs/budgets.md).
    public var usd: Double

    public init(id: Int, usd: Double) {
        self.id = id
        self.usd = usd
    }
}

/// The supervisor's answer to the egress proxy's `reserve` events when daily
/// budgets apply (a line on the proxy's stdin, docs/contract.md):
/// `{"spend": {"reservation": id, "refusal": notice}}`. Without `refusal`,
/// the call's bound is reserved in every counter and the call may start;
/// with it, the call is refused and the job is stopped.
public struct SharedSpendAnswer: Sendable, Codable, Equatable {
    public struct Body: Sendable, Codable, Equatable {
        /// The reservation answered (`SpendReservation.id`).
        public var reservation: Int
        /// The daily budget that refuses the call (nil: reserved).
        public var refusal: BudgetNotice?
    }
    public var spend: Body

    public init(reservation: Int, refusal: BudgetNotice?) {
        spend = Body(reservation: reservation, refusal: refusal)
    }
}
