/// A job's `status` in the database (docs/contract.md, "Job lifecycle"):
/// the one spelling of each, and of which of them are final.
public enum JobStatus: String, Sendable, Codable, CaseIterable {
    case pending, running, done, failed, cancelled

    /// The statuses a job ends in: nothing is written to it after one,
    /// unless an operator retries it (`failed`, `cancelled`).
    public static let terminal: [JobStatus] = [.done, .failed, .cancelled]

    /// Whether the job has ended.
    public var isTerminal: Bool { Self.terminal.contains(self) }

    /// Whether `status` (as read from a document) names an ended job.
    public static func isTerminal(_ status: String?) -> Bool { status.flatMap(JobStatus.init(rawValue:))?.isTerminal ?? false }

    /// The status as a document value.
    public var json: JSONValue { .string(rawValue) }
}
