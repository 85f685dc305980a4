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
    case resourceLimit = "resource_limit"
    case sandboxViolation = "sandbox_violation"
    /// The host cannot give the job the confinement SANDBOX=enforce requires
    /// (namespaces, Landlock): an operator must fix the host.
    case sandboxUnavailable = "sandbox_unavailable"
    case childCrashed = "child_crashed"
    case leaseLost = "lease_lost"
    case `internal`

    /// Whether a failure with this code is worth another attempt by default.
    public var retryable: Bool {
        switch self {
        case .generationFailed, .pushRejected, .pushFailed, .childCrashed, .leaseLost, .internal: true
        case .invalidSpec, .invalidRemote, .unsafeOutput, .validationFailed, .pushAuthFailed, .timeout,
             .resourceLimit, .sandboxViolation, .sandboxUnavailable: false
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
