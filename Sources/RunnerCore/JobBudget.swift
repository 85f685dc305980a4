import Foundation

/// What a budget limit counts.
public enum BudgetUnit: String, Sendable, Codable {
    /// US dollars by the price table.
    case usd
    /// Every token (input, output, cache read and write).
    case tokens
    /// Model calls started.
    case requests

    /// "$1.2345", "12000 tokens", "40 requests".
    public func amount(_ v: Double) -> String {
        switch self {
        case .usd: UsageTotals.dollars(v)
        case .tokens: "\(Self.whole(v)) tokens"
        case .requests: "\(Self.whole(v)) requests"
        }
    }

    /// `v` as a whole number (0 for a value that is not finite).
    static func whole(_ v: Double) -> Int64 { v.isFinite ? Int64(max(-1e15, min(v, 1e15))) : 0 }
}

/// One limit of a budget, the setting it came from (named in messages) and what it counts.
public struct BudgetLimit: Sendable, Codable, Equatable {
    public var value: Double
    /// `JOB_BUDGET_USD`, …, `budget.usd`, … (the job document's), or `USER_DAILY_BUDGET_USD`, ….
    public var setting: String
    public var unit: BudgetUnit

    public init(_ value: Double, setting: String, unit: BudgetUnit) {
        self.value = value
        self.setting = setting
        self.unit = unit
    }
}

/// What one job may spend on model calls (docs/budgets.md), enforced by its
/// egress proxy: the operator's JOB_BUDGET_* settings, each lowered by the
/// job document's own `budget` where that is lower (the operator's value is
/// the ceiling).
public struct JobBudget: Sendable, Codable, Equatable {
    /// US dollars by the price table (calls of unpriced models do not count).
    public var usd: BudgetLimit?
    /// Every token (input, output, cache read and write).
    public var tokens: BudgetLimit?
    /// Model calls started.
    public var requests: BudgetLimit?

    public init(usd: BudgetLimit? = nil, tokens: BudgetLimit? = nil, requests: BudgetLimit? = nil) {
        self.usd = usd
        self.tokens = tokens
        self.requests = requests
    }

    public var isEmpty: Bool { usd == nil && tokens == nil && requests == nil }

    /// Each limit the lower of this one's (the operator's) and `job`'s.
    public func lowered(by job: JobBudget) -> JobBudget {
        func lower(_ a: BudgetLimit?, _ b: BudgetLimit?) -> BudgetLimit? {
            guard let b else { return a }
            guard let a else { return b }
            return b.value < a.value ? b : a
        }
        return JobBudget(usd: lower(usd, job.usd), tokens: lower(tokens, job.tokens), requests: lower(requests, job.requests))
    }

    /// The job document's `budget` (absent or null: none), checked as
    /// untrusted input: an object with only `usd` (a number > 0), `tokens`
    /// and `requests` (whole numbers > 0). Anything else is `invalid_spec`
    /// naming the field.
    public static func fromJob(_ value: JSONValue?) throws(JobFailure) -> JobBudget {
        guard let value, !value.isNull else { return JobBudget() }
        guard let object = value.objectValue else {
            throw JobFailure(.invalidSpec, "budget must be an object {usd, tokens, requests}, not a \(value.typeName)")
        }
        var budget = JobBudget()
        for (key, v) in object.sorted(by: { $0.key < $1.key }) {
            let number: Double? = switch v {
            case .int(let i): Double(i)
            case .double(let d): d
            default: nil
            }
            guard let number, number.isFinite, number > 0 else {
                throw JobFailure(.invalidSpec, "budget.\(key) must be a number greater than 0")
            }
            switch key {
            case "usd": budget.usd = BudgetLimit(number, setting: "budget.usd", unit: .usd)
            case "tokens", "requests":
                guard number == number.rounded(), number <= 1e15 else {
                    throw JobFailure(.invalidSpec, "budget.\(key) must be a whole number greater than 0")
                }
                if key == "tokens" { budget.tokens = BudgetLimit(number, setting: "budget.tokens", unit: .tokens) }
                else { budget.requests = BudgetLimit(number, setting: "budget.requests", unit: .requests) }
            default:
                throw JobFailure(.invalidSpec, "budget.\(LogBounds.clip(key, bytes: 64)) is not a budget field (usd, tokens, requests)")
            }
        }
        return budget
    }
}

/// A budget's state, reported by the egress proxy at 50 % and 80 % of a
/// limit, when a limit is reached, and when a call is refused for it.
public struct BudgetNotice: Sendable, Codable, Equatable {
    /// Which budget a notice concerns, and so the failure a refusal ends the job with.
    public enum Kind: String, Sendable, Codable {
        /// The job's own (JOB_BUDGET_*, `budget`): `budget_exceeded`.
        case job
        /// A daily budget of its user or project: `daily_budget_exceeded`.
        case daily
        /// A daily budget whose spend could not be counted (no answer of the
        /// supervisor in time): `daily_budget_exceeded`.
        case dailyUncounted

        /// The failure a refused call of this kind ends the job with.
        public var failureCode: JobErrorCode { self == .job ? .budgetExceeded : .dailyBudgetExceeded }
    }

    /// The limit concerned.
    public var limit: BudgetLimit
    /// What was spent of it so far.
    public var spent: Double
    /// 50, 80 or 100 (reached); with `exceeded`, the spend's share of the limit.
    public var percent: Int
    /// A model call was refused: the job ends as `kind` says.
    public var exceeded: Bool
    public var kind: Kind

    public init(limit: BudgetLimit, spent: Double, percent: Int, exceeded: Bool, kind: Kind = .job) {
        self.limit = limit
        self.spent = spent
        self.percent = percent
        self.exceeded = exceeded
        self.kind = kind
    }

    /// `spent` in whole percent of `limit` (0 … 1,000,000); 100 when the
    /// limit is not a positive finite number or `spent` is not finite.
    public static func percent(_ spent: Double, _ limit: BudgetLimit) -> Int {
        guard limit.value > 0, limit.value.isFinite, spent.isFinite else { return 100 }
        return Int(max(0, min(spent / limit.value * 100, 1e6)).rounded(.down))
    }

    /// The job-log line, and the failure's message when `exceeded`.
    public var message: String {
        let unit = limit.unit
        if kind == .dailyUncounted {
            return "daily budget exceeded: the spend of \(limit.setting) could not be counted (the supervisor did not answer "
                + "in time); the next model call was refused and the agent stopped"
        }
        let name = "\(limit.setting)=\(unit.amount(limit.value))"
        let spentText = unit.amount(spent)
        guard exceeded else {
            return percent >= 100 ? "budget: \(name) reached (spent \(spentText)); the next model call is refused"
                : "budget: \(percent)% of \(name) spent (\(spentText))"
        }
        let over = spent - limit.value
        return "budget exceeded: \(name) spent (\(spentText)"
            + (over > 0 ? ", over by \(unit.amount(over)) from calls already under way, each bounded by its "
                + "own max_tokens" : "")
            + "); the next model call was refused and the agent stopped"
    }

    /// The failure of a job a refusal of this notice stops.
    public var failure: JobFailure { JobFailure(kind.failureCode, message) }
}
