import Foundation

/// One limit of a job's budget and the setting it came from (named in messages).
public struct BudgetLimit: Sendable, Codable, Equatable {
    public var value: Double
    /// `JOB_BUDGET_USD`, …, or `budget.usd`, … (the job document's).
    public var setting: String

    public init(_ value: Double, setting: String) {
        self.value = value
        self.setting = setting
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
            case "usd": budget.usd = BudgetLimit(number, setting: "budget.usd")
            case "tokens", "requests":
                guard number == number.rounded(), number <= 1e15 else {
                    throw JobFailure(.invalidSpec, "budget.\(key) must be a whole number greater than 0")
                }
                if key == "tokens" { budget.tokens = BudgetLimit(number, setting: "budget.tokens") }
                else { budget.requests = BudgetLimit(number, setting: "budget.requests") }
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
    /// The limit concerned.
    public var limit: BudgetLimit
    /// What was spent of it so far.
    public var spent: Double
    /// 50, 80 or 100 (reached); with `exceeded`, the spend's share of the limit.
    public var percent: Int
    /// A model call was refused: the job ends `budget_exceeded`.
    public var exceeded: Bool

    public init(limit: BudgetLimit, spent: Double, percent: Int, exceeded: Bool) {
        self.limit = limit
        self.spent = spent
        self.percent = percent
        self.exceeded = exceeded
    }

    /// `spent` in whole percent of `limit` (at most 1,000,000).
    public static func percent(_ spent: Double, _ limit: BudgetLimit) -> Int {
        Int(min(spent / limit.value * 100, 1e6).rounded(.down))
    }

    /// "$1.2345", "12000 tokens", "40 requests".
    public static func amount(_ v: Double, _ setting: String) -> String {
        if setting.hasSuffix("USD") || setting.hasSuffix("usd") { return UsageTotals.dollars(v) }
        let unit = setting.hasSuffix("TOKENS") || setting.hasSuffix("tokens") ? "tokens" : "requests"
        return "\(Int(v)) \(unit)"
    }

    /// The job-log line, and the failure's message when `exceeded`.
    public var message: String {
        let name = "\(limit.setting)=\(Self.amount(limit.value, limit.setting))"
        let spentText = Self.amount(spent, limit.setting)
        guard exceeded else {
            return percent >= 100 ? "budget: \(name) reached (spent \(spentText)); the next model call is refused"
                : "budget: \(percent)% of \(name) spent (\(spentText))"
        }
        let over = spent - limit.value
        return "budget exceeded: \(name) spent (\(spentText)"
            + (over > 0 ? ", over by \(Self.amount(over, limit.setting)) from calls already under way, each bounded by its "
                + "own max_tokens" : "")
            + "); the next model call was refused and the agent stopped"
    }
}
