import Foundation

/// Why a job stopped before its end, for a checkpoint (CHECKPOINT_ON).
public enum CheckpointReason: String, Sendable, Codable, CaseIterable {
    /// A model call was refused for the job's budget (`budget_exceeded`).
    case budget
    /// JOB_TIMEOUT_SECONDS passed (`timeout`).
    case timeout
    /// An operator cancelled the running job.
    case cancel
}

/// A job's partial work, committed by its job child once every agent
/// process was gone and pushed to its work-in-progress branch (never the
/// project's): the job's `metadata.checkpoint`.
public struct CheckpointInfo: Sendable, Codable, Hashable {
    /// The work-in-progress branch (CHECKPOINT_BRANCH).
    public var branch: String
    public var commitSha: String
    public var reason: CheckpointReason

    public init(branch: String, commitSha: String, reason: CheckpointReason) {
        self.branch = branch
        self.commitSha = commitSha
        self.reason = reason
    }

    public var json: JSONValue {
        ["branch": .string(branch), "commitSha": .string(commitSha), "reason": .string(reason.rawValue)]
    }

    /// Where the partial work is, for the job's error message and log.
    public var whereText: String { "the partial work is on branch \(branch) at \(commitSha)" }

    /// A stored `metadata.checkpoint`, checked as untrusted input (the job
    /// document is shared with the web app): an object whose branch is
    /// `expectedBranch` (this job's own), whose commit is 40 hex digits and
    /// whose reason is known. Nil for anything else.
    public static func stored(_ value: JSONValue?, expectedBranch: String) -> CheckpointInfo? {
        guard let value, let branch = value["branch"]?.stringValue, branch == expectedBranch,
              let sha = value["commitSha"]?.stringValue, sha.utf8.count == 40,
              sha.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }),
              let reason = value["reason"]?.stringValue.flatMap(CheckpointReason.init(rawValue:)) else { return nil }
        return CheckpointInfo(branch: branch, commitSha: sha, reason: reason)
    }
}

/// What the job child is told about checkpoints in its ticket: the branch
/// its partial work goes to, and the checkpoint to start from (a retried
/// job with RESUME_FROM_CHECKPOINT=true).
public struct CheckpointPlan: Sendable, Codable, Equatable {
    public var branch: String
    public var resumeFrom: CheckpointInfo?

    public init(branch: String, resumeFrom: CheckpointInfo? = nil) {
        self.branch = branch
        self.resumeFrom = resumeFrom
    }
}

/// The supervisor's checkpoint settings (docs/budgets.md, "Checkpoints"):
/// CHECKPOINT_ON, CHECKPOINT_BRANCH, CHECKPOINT_GRACE_SECONDS and
/// RESUME_FROM_CHECKPOINT.
public struct CheckpointSettings: Sendable, Equatable {
    /// The stops that checkpoint (`none`: none).
    public var on: Set<CheckpointReason>
    /// The branch template; `{jobId}` is replaced.
    public var branchTemplate: String
    /// How long the supervisor lets a stopped child checkpoint before SIGKILL.
    public var graceSeconds: Int
    /// A retried job starts from its last checkpoint's tree.
    public var resume: Bool

    public init(on: Set<CheckpointReason> = Set(CheckpointReason.allCases), branchTemplate: String = "agent-runner/wip/{jobId}",
                graceSeconds: Int = 60, resume: Bool = false) {
        self.on = on
        self.branchTemplate = branchTemplate
        self.graceSeconds = graceSeconds
        self.resume = resume
    }

    init(_ r: ConfigReader) throws {
        let list = r.string("CHECKPOINT_ON").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty }
        var on = Set<CheckpointReason>()
        if list != ["none"] {
            for name in list {
                guard let reason = CheckpointReason(rawValue: name) else {
                    throw ConfigurationError("CHECKPOINT_ON", "'\(name)' is not budget, timeout or cancel (none: no checkpoint)")
                }
                on.insert(reason)
            }
        }
        self.on = on
        branchTemplate = r.string("CHECKPOINT_BRANCH")
        guard branchTemplate.contains("{jobId}"),
              RunnerConfiguration.isSafeRefName(branchTemplate.replacingOccurrences(of: "{jobId}", with: "0123abc")) else {
            throw ConfigurationError("CHECKPOINT_BRANCH", "'\(branchTemplate)' must hold {jobId} and make a branch name "
                + "(letters, digits, '.', '_', '-', '/')")
        }
        graceSeconds = try r.int("CHECKPOINT_GRACE_SECONDS", 1...3600)
        resume = try r.bool("RESUME_FROM_CHECKPOINT")
    }

    /// The work-in-progress branch of job `jobId`: the template with the id,
    /// or, for an id that would not make a branch name (a string `_id` may
    /// hold anything), with its `WorkspaceName`.
    public func branch(jobId: String) -> String {
        let plain = branchTemplate.replacingOccurrences(of: "{jobId}", with: jobId)
        if jobId.utf8.count <= 100, jobId.range(of: #"^[A-Za-z0-9_-]+$"#, options: .regularExpression) != nil,
           RunnerConfiguration.isSafeRefName(plain) {
            return plain
        }
        return branchTemplate.replacingOccurrences(of: "{jobId}", with: WorkspaceName.of(jobId))
    }
}

/// A line the supervisor writes on the job child's stdin besides the push
/// token: stop now, checkpointing the partial work (docs/contract.md).
/// `{"stop": {"reason": "timeout", "message": "the job ran longer than …"}}`.
public struct ChildStop: Sendable, Codable, Equatable {
    public struct Body: Sendable, Codable, Equatable {
        public var reason: CheckpointReason
        /// Why the run stopped, for the commit's message.
        public var message: String
    }
    public var stop: Body

    public init(reason: CheckpointReason, message: String) {
        stop = Body(reason: reason, message: message)
    }
}
