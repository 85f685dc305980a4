import Foundation

/// The field names of the job and project documents, every alias in one
/// place. Two writers create these documents: the seed's worker contract
/// (camelCase: `projectId`, `createdAt`, `githubRepoUrl`) and the Architex
/// web app's FastAPI backend (snake_case on its main path: `project_id`,
/// `created_at`, `github_repo_url`, `repository_url`, `project_name`). Reads
/// try the names in the order given; the runner writes only its own
/// documented fields (docs/contract.md), never an alias.
public enum DocumentFields {
    /// The job's reference to its project: the project's `_id`, or its `projectId` field.
    public static let projectRef = ["projectId", "project_id"]
    /// When the job was created: orders the claim and the listing.
    public static let createdAt = ["createdAt", "created_at"]
    /// The user the job or project belongs to.
    public static let userId = ["userId", "user_id"]
    /// The project's display name.
    public static let projectName = ["name", "project_name"]
    /// The project's git remote.
    public static let repoURL = ["githubRepoUrl", "github_repo_url", "repository_url"]
    /// The publish mode a job or project chooses (`PublishPlan`).
    public static let publishMode = ["publishMode", "publish_mode"]
    /// The agent a job asks for (`AgentChoice`, within AGENTS_ALLOWED).
    public static let agent = ["agent"]
    /// The GitHub logins a project asks to review its pull requests.
    public static let reviewers = ["pullRequestReviewers", "pull_request_reviewers"]
    /// A project's own id field, for jobs whose reference is not its `_id`.
    public static let projectOwnId = "projectId"

    /// The first of `names` present in `doc` with a non-null value.
    public static func first(_ names: [String], in doc: JSONValue) -> JSONValue? {
        for name in names {
            if let v = doc[name], !v.isNull { return v }
        }
        return nil
    }

    /// The first of `names` that holds a non-empty string.
    public static func firstString(_ names: [String], in doc: JSONValue) -> String? {
        for name in names {
            if let s = doc[name]?.stringValue, !s.isEmpty { return s }
        }
        return nil
    }
}

/// A job document, decoded once when it is claimed or read. Fields the runner
/// does not know stay in `document`; nothing here is written back.
public struct Job: Sendable {
    /// `_id` exactly as stored: an ObjectId (`{"$oid": …}`) or a string (the app's uuid).
    public var id: JSONValue
    /// The project reference (`projectId`, else `project_id`), as stored.
    public var projectRef: JSONValue?
    /// `userId`, else `user_id`, as text.
    public var userId: String?
    /// `architecture_spec`, as drawn.
    public var architectureSpec: JSONValue?
    /// A prompt set on the job itself (the spec's own `prompt` comes first).
    public var prompt: String?
    /// `createdAt`, else `created_at`, when it is a date.
    public var createdAt: Date?
    public var status: String?
    public var priority: Int64?
    public var attempts: Int
    /// The last `seq` of the job's event stream its last outcome recorded (0: none).
    public var eventSeq: Int
    /// The job's own attempt limit, if it sets one.
    public var maxAttempts: Int?
    public var notBefore: Date?
    public var cancelRequested: Bool
    /// The whole document.
    public var document: JSONValue

    public init(_ doc: JSONValue) {
        document = doc
        id = doc["_id"] ?? .null
        projectRef = DocumentFields.first(DocumentFields.projectRef, in: doc)
        userId = DocumentFields.first(DocumentFields.userId, in: doc).flatMap { $0["$oid"]?.stringValue ?? $0.stringValue }
        architectureSpec = doc["architecture_spec"].flatMap { $0.isNull ? nil : $0 }
        prompt = doc["prompt"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        createdAt = Self.date(doc)
        status = doc["status"]?.stringValue
        priority = doc["priority"]?.intValue
        attempts = Int(doc["attempts"]?.intValue ?? 0)
        eventSeq = Swift.max(0, Int(clamping: doc["eventSeq"]?.intValue ?? 0))
        maxAttempts = doc["maxAttempts"]?.intValue.map(Int.init)
        notBefore = doc["notBefore"]?.dateValue
        cancelRequested = doc["cancelRequested"]?.boolValue == true
    }

    /// The creation time in milliseconds from `createdAt`, else `created_at`
    /// (the claim's ordering key; a value that is not a date does not count).
    public static func createdMilliseconds(_ doc: JSONValue) -> Int64? {
        for name in DocumentFields.createdAt {
            if let ms = doc[name]?.dateMilliseconds { return ms }
        }
        return nil
    }

    static func date(_ doc: JSONValue) -> Date? {
        createdMilliseconds(doc).map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }
}

/// A project document, decoded once.
public struct Project: Sendable {
    /// `_id` exactly as stored (a uuid string, an ObjectId hex string, or an ObjectId).
    public var id: JSONValue
    /// `name`, else `project_name`.
    public var name: String?
    /// `githubRepoUrl`, else `github_repo_url`, else `repository_url`.
    public var repoURL: String?
    /// `userId`, else `user_id`, as text.
    public var userId: String?
    /// The whole document.
    public var document: JSONValue

    public init(_ doc: JSONValue) {
        document = doc
        id = doc["_id"] ?? .null
        name = DocumentFields.firstString(DocumentFields.projectName, in: doc)
        repoURL = DocumentFields.firstString(DocumentFields.repoURL, in: doc)
        userId = DocumentFields.first(DocumentFields.userId, in: doc).flatMap { $0["$oid"]?.stringValue ?? $0.stringValue }
    }
}
