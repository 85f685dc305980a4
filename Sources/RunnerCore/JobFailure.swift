/// Job error codes (docs/contract.md, Error codes). Each has a default `retryable`.
public enum JobErrorCode: String, Sendable, Codable, CaseIterable {
    case invalidSpec = "invalid_spec"
    /// The project's repository URL breaks a rule (`RepositoryRemote`,
    /// `RemotePolicy`): the job fails before anything of it is made.
    case invalidRemote = "invalid_remote"
    case generationFailed = "generation_failed"
    case unsafeOutput = "unsafe_output"
    case validationFailed = "validation_failed"
    case pushAuthFailed = "push_auth_failed"
    case pushRejected = "push_rejected"
    case pushFailed = "push_failed"
    case timeout
    /// A model call was refused because the job's budget (JOB_BUDGET_*, or
    /// the job's own `budget`) was spent; the message names the budget and the spend.
    case budgetExceeded = "budget_exceeded"
    /// The job's user or project spent its daily budget (USER_DAILY_BUDGET_USD,
    /// PROJECT_DAILY_BUDGET_USD): before it started (DAILY_BUDGET_ACTION=fail),
    /// or while it ran (its next model call refused).
    case dailyBudgetExceeded = "daily_budget_exceeded"
    case resourceLimit = "resource_limit"
    case sandboxViolation = "sandbox_violation"
    /// The host cannot give the job the confinement SANDBOX=enforce requires
    /// (namespaces, Landlock): an operator must fix the host.
    case sandboxUnavailable = "sandbox_unavailable"
    case childCrashed = "child_crashed"
    case leaseLost = "lease_lost"
    case `internal`
    /// Publishing as a pull request (docs/publishing.md): GitHub has no such
    /// repository, or the token cannot see it.
    case repositoryNotFound = "repository_not_found"
    /// GitHub refused the token for the pull request (401, or 403 without a rate limit).
    case pullRequestForbidden = "pull_request_forbidden"
    /// GitHub protects the publish branch.
    case branchProtected = "branch_protected"
    /// GitHub's rate limit outlasted the waits (`Retry-After`).
    case rateLimited = "rate_limited"
    /// GitHub refused the pull request as invalid (422), quoted.
    case pullRequestInvalid = "pull_request_invalid"
    /// No answer from GitHub's API, a 5xx, or an answer without what it must hold.
    case pullRequestFailed = "pull_request_failed"

    /// Whether a failure with this code is worth another attempt by default.
    public var retryable: Bool {
        switch self {
        case .generationFailed, .pushRejected, .pushFailed, .childCrashed, .leaseLost, .internal, .rateLimited,
             .pullRequestFailed: true
        case .invalidSpec, .invalidRemote, .unsafeOutput, .validationFailed, .pushAuthFailed, .timeout,
             .budgetExceeded, .dailyBudgetExceeded, .resourceLimit, .sandboxViolation, .sandboxUnavailable, .repositoryNotFound, .pullRequestForbidden,
             .branchProtected, .pullRequestInvalid: false
        }
    }
}

/// A job's failure as recorded in the job document's `error` field.
public struct JobFailure: Error, Sendable, Codable, Hashable, CustomStringConvertible {
    public var code: JobErrorCode
    public var message: String
    public var retryable: Bool

    public init(_ code: JobErrorCode, _ message: String, retryable: Bool? = nil) {
        self.code = code
        self.message = message
        self.retryable = retryable ?? code.retryable
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The longest message stored, in UTF-8 bytes (`error` and each of the
    /// 20 `errors` entries): a child's failure can be as long as its line.
    public static let maxStoredMessageBytes = 16_384

    /// The `error` sub-document, its message cut to `maxStoredMessageBytes`.
    public var json: JSONValue {
        ["code": .string(code.rawValue), "message": .string(LogBounds.clip(message, bytes: Self.maxStoredMessageBytes)),
         "retryable": .bool(retryable)]
    }
}
