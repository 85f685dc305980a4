import Foundation

/// What jobs may spend on model calls, how it is priced, and how provider
/// faults are retried (docs/budgets.md): JOB_BUDGET_USD, JOB_BUDGET_TOKENS,
/// JOB_BUDGET_REQUESTS, MODEL_PRICES_FILE, PROVIDER_RETRIES and
/// PROVIDER_RETRY_WAIT_SECONDS. Sent to each job's egress proxy, which
/// meters, enforces and retries.
public struct SpendSettings: Sendable, Equatable {
    /// The operator's limits (the ceiling of every job's own `budget`).
    public var budget: JobBudget
    /// The shipped price table, with MODEL_PRICES_FILE's models on top.
    public var prices: PriceTable
    /// How the proxy retries a provider's transient faults.
    public var retry: ProviderRetry
    /// Per-user and per-project daily budgets, shared by every supervisor.
    public var daily = DailyBudgetSettings()

    public init(budget: JobBudget = JobBudget(), prices: PriceTable = .shipped, retry: ProviderRetry = ProviderRetry()) {
        self.budget = budget
        self.prices = prices
        self.retry = retry
    }

    init(_ r: ConfigReader) throws {
        func limit(_ name: String, _ unit: BudgetUnit) throws -> BudgetLimit? {
            let whole = unit != .usd
            guard let text = r.optional(name) else { return nil }
            guard let v = Double(text), v.isFinite, v > 0, !whole || (v == v.rounded() && v <= 1e15) else {
                throw ConfigurationError(name, "'\(text)' is not \(whole ? "a whole number" : "a number") greater than 0 (unset: no limit)")
            }
            return BudgetLimit(v, setting: name, unit: unit)
        }
        budget = JobBudget(usd: try limit("JOB_BUDGET_USD", .usd), tokens: try limit("JOB_BUDGET_TOKENS", .tokens),
                           requests: try limit("JOB_BUDGET_REQUESTS", .requests))
        prices = try r.optional("MODEL_PRICES_FILE").map(PriceTable.loading(file:)) ?? .shipped
        retry = ProviderRetry(retries: try r.int("PROVIDER_RETRIES", 0...10),
                              maxWaitSeconds: try r.int("PROVIDER_RETRY_WAIT_SECONDS", 0...600))
        guard let action = DailyBudgetAction(rawValue: r.string("DAILY_BUDGET_ACTION")) else {
            throw ConfigurationError("DAILY_BUDGET_ACTION", "'\(r.string("DAILY_BUDGET_ACTION"))' is not wait or fail")
        }
        daily = DailyBudgetSettings(userUSD: try limit("USER_DAILY_BUDGET_USD", .usd)?.value,
                                    projectUSD: try limit("PROJECT_DAILY_BUDGET_USD", .usd)?.value, action: action)
    }

    /// The budget of `job`: the operator's, lowered by the document's own
    /// `budget`; a malformed one is `invalid_spec` (not retried).
    public func budget(for job: Job) throws(JobFailure) -> JobBudget {
        budget.lowered(by: try JobBudget.fromJob(job.document["budget"]))
    }
}
