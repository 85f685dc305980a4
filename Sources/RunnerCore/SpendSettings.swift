import Foundation

/// What jobs may spend on model calls and how it is priced (docs/budgets.md):
/// JOB_BUDGET_USD, JOB_BUDGET_TOKENS, JOB_BUDGET_REQUESTS and MODEL_PRICES_FILE.
/// Sent to each job's egress proxy, which meters and enforces them.
public struct SpendSettings: Sendable, Equatable {
    /// The operator's limits (the ceiling of every job's own `budget`).
    public var budget: JobBudget
    /// The shipped price table, with MODEL_PRICES_FILE's models on top.
    public var prices: PriceTable

    public init(budget: JobBudget = JobBudget(), prices: PriceTable = .shipped) {
        self.budget = budget
        self.prices = prices
    }

    init(_ r: ConfigReader) throws {
        func limit(_ name: String, whole: Bool) throws -> BudgetLimit? {
            guard let text = r.optional(name) else { return nil }
            guard let v = Double(text), v.isFinite, v > 0, !whole || (v == v.rounded() && v <= 1e15) else {
                throw ConfigurationError(name, "'\(text)' is not \(whole ? "a whole number" : "a number") greater than 0 (unset: no limit)")
            }
            return BudgetLimit(v, setting: name)
        }
        budget = JobBudget(usd: try limit("JOB_BUDGET_USD", whole: false), tokens: try limit("JOB_BUDGET_TOKENS", whole: true),
                           requests: try limit("JOB_BUDGET_REQUESTS", whole: true))
        prices = try r.optional("MODEL_PRICES_FILE").map(PriceTable.loading(file:)) ?? .shipped
    }

    /// The budget of `job`: the operator's, lowered by the document's own
    /// `budget`; a malformed one is `invalid_spec` (not retried).
    public func budget(for job: Job) throws(JobFailure) -> JobBudget {
        budget.lowered(by: try JobBudget.fromJob(job.document["budget"]))
    }
}
