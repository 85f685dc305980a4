import Foundation

/// PUBLISH_MODE: how a job's commit reaches its remote (docs/publishing.md).
public enum PublishMode: String, Sendable, Codable, CaseIterable {
    /// Onto CLONE_DEFAULT_BRANCH itself.
    case push
    /// Onto the job's publish branch (PUBLISH_BRANCH), started from the default branch.
    case branch
    /// As `branch`, then a pull request from it to the repository's default branch (GitHub's REST API).
    case pullRequest = "pull-request"
}

/// The operator's publishing settings: validated with the rest of the
/// configuration (they are `ChildSettings.publish`, sent whole in every ticket).
public struct PublishSettings: Sendable, Codable, Equatable {
    /// PUBLISH_MODE: the mode of a job and project that choose none.
    public var mode: PublishMode
    /// PUBLISH_MODES_ALLOWED: the modes a job or project may choose (always holds `mode`).
    public var allowed: [PublishMode]
    /// PUBLISH_BRANCH: the publish branch's template (`{jobId}`, `{projectId}`, `{projectSlug}`).
    public var branchTemplate: String
    /// PULL_REQUEST_DRAFT.
    public var draft: Bool
    /// PULL_REQUEST_LABELS.
    public var labels: [String]
    /// DASHBOARD_URL: the dashboard's base URL, for the job's link in a pull request; nil: no link.
    public var dashboardURL: String?
    /// GITHUB_API_URL (read with the push-token settings).
    public var apiURL: String

    /// The placeholders PUBLISH_BRANCH may use.
    public static let placeholders = ["{jobId}", "{projectId}", "{projectSlug}"]
    /// The most labels, and the longest label (GitHub's own limit is 50 characters).
    public static let maxLabels = 20, maxLabelLength = 50

    init(_ r: ConfigReader) throws {
        guard let mode = PublishMode(rawValue: r.string("PUBLISH_MODE")) else {
            throw ConfigurationError("PUBLISH_MODE", "must be push, branch or pull-request")
        }
        self.mode = mode
        var allowed: [PublishMode] = []
        for entry in r.string("PUBLISH_MODES_ALLOWED").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
        where !entry.isEmpty {
            guard let m = PublishMode(rawValue: entry) else {
                throw ConfigurationError("PUBLISH_MODES_ALLOWED", "'\(entry)' is not push, branch or pull-request")
            }
            if !allowed.contains(m) { allowed.append(m) }
        }
        guard allowed.isEmpty || allowed.contains(mode) else {
            throw ConfigurationError("PUBLISH_MODES_ALLOWED", "must include PUBLISH_MODE (\(mode.rawValue))")
        }
        self.allowed = allowed.isEmpty ? [mode] : allowed
        branchTemplate = r.string("PUBLISH_BRANCH")
        let sample = Self.expand(branchTemplate, jobId: "0123456789abcdef01234567", projectId: "0123456789abcdef01234567",
                                 projectSlug: "project")
        guard !sample.contains("{"), !sample.contains("}") else {
            throw ConfigurationError("PUBLISH_BRANCH", "'\(branchTemplate)' uses a placeholder other than "
                + Self.placeholders.joined(separator: ", "))
        }
        guard RunnerConfiguration.isSafeRefName(sample) else {
            throw ConfigurationError("PUBLISH_BRANCH", "'\(branchTemplate)' does not make a valid branch name")
        }
        draft = try r.bool("PULL_REQUEST_DRAFT")
        labels = r.string("PULL_REQUEST_LABELS").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard labels.count <= Self.maxLabels, labels.allSatisfy({ label in
            label.count <= Self.maxLabelLength && !label.unicodeScalars.contains { $0.properties.generalCategory == .control }
        }) else {
            throw ConfigurationError("PULL_REQUEST_LABELS", "at most \(Self.maxLabels) comma-separated labels of at most "
                + "\(Self.maxLabelLength) characters, without control characters")
        }
        dashboardURL = r.optional("DASHBOARD_URL").map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        if let url = dashboardURL, URLParts(url) == nil {
            throw ConfigurationError("DASHBOARD_URL", "must be an http(s) URL")
        }
        apiURL = r.string("GITHUB_API_URL")
    }

    /// `template` with its placeholders replaced.
    public static func expand(_ template: String, jobId: String, projectId: String, projectSlug: String) -> String {
        template.replacingOccurrences(of: "{jobId}", with: jobId).replacingOccurrences(of: "{projectId}", with: projectId)
            .replacingOccurrences(of: "{projectSlug}", with: projectSlug)
    }

    /// A project name as a branch-name part: lower-case letters, digits and
    /// single hyphens, at most 40 characters; "project" when nothing is left.
    public static func slug(_ name: String) -> String {
        var out = ""
        for ch in name.lowercased().unicodeScalars {
            if (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") { out.unicodeScalars.append(ch) }
            else if !out.isEmpty, !out.hasSuffix("-") { out += "-" }
            if out.count >= 40 { break }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return out.isEmpty ? "project" : out
    }
}

/// One job's publishing, decided once by the supervisor from the job, its
/// project (fields web users write, checked here) and `PublishSettings`, and
/// sent in the ticket.
public struct PublishPlan: Sendable, Codable, Equatable {
    public var mode: PublishMode
    /// The branch committed to and pushed: CLONE_DEFAULT_BRANCH for `push`,
    /// else PUBLISH_BRANCH expanded for this job.
    public var branch: String
    /// GitHub logins asked to review the pull request (the project's `pullRequestReviewers`).
    public var reviewers: [String]
    /// Who chose the mode: `job`, `project` or `PUBLISH_MODE`.
    public var chosenBy: String

    public init(mode: PublishMode, branch: String, reviewers: [String] = [], chosenBy: String = "PUBLISH_MODE") {
        self.mode = mode
        self.branch = branch
        self.reviewers = reviewers
        self.chosenBy = chosenBy
    }

    /// The most reviewers asked (GitHub's own limit is 15 per request).
    public static let maxReviewers = 15

    /// The plan for `job` of `project`; `invalid_spec` naming the field for a
    /// mode that is not one, or not allowed, a reviewer that is not a GitHub
    /// login, or a publish branch that is not a safe branch name.
    public static func decide(job: Job, jobId: String, project: Project, settings: ChildSettings) throws -> PublishPlan {
        let publish = settings.publish
        var mode = publish.mode
        var chosenBy = "PUBLISH_MODE"
        for (who, doc) in [("job", job.document), ("project", project.document)] {
            guard let value = DocumentFields.first(DocumentFields.publishMode, in: doc) else { continue }
            guard let text = value.stringValue, let chosen = PublishMode(rawValue: text) else {
                throw JobFailure(.invalidSpec, "the \(who)'s publishMode must be push, branch or pull-request")
            }
            guard publish.allowed.contains(chosen) else {
                throw JobFailure(.invalidSpec, "the \(who)'s publishMode \(chosen.rawValue) is not allowed here "
                    + "(PUBLISH_MODES_ALLOWED=\(publish.allowed.map(\.rawValue).joined(separator: ",")))")
            }
            mode = chosen
            chosenBy = who
            break
        }
        var reviewers: [String] = []
        if let value = DocumentFields.first(DocumentFields.reviewers, in: project.document) {
            guard let list = value.arrayValue, list.count <= maxReviewers,
                  let logins = Optional(list.compactMap(\.stringValue)), logins.count == list.count,
                  logins.allSatisfy(GitHubAppTokenRequest.isLogin) else {
                throw JobFailure(.invalidSpec, "the project's pullRequestReviewers must be a list of at most "
                    + "\(maxReviewers) GitHub logins")
            }
            reviewers = logins
        }
        guard mode != .push else { return PublishPlan(mode: mode, branch: settings.branch, chosenBy: chosenBy) }
        let projectId = project.id["$oid"]?.stringValue ?? project.id.stringValue ?? project.id.jsonString
        let branch = PublishSettings.expand(publish.branchTemplate, jobId: jobId, projectId: projectId,
                                            projectSlug: PublishSettings.slug(project.name ?? "project"))
        guard RunnerConfiguration.isSafeRefName(branch) else {
            throw JobFailure(.invalidSpec, "PUBLISH_BRANCH=\(publish.branchTemplate) gives '\(branch.prefix(120))' for "
                + "this job, which is not a valid branch name (a project id with other characters than letters, "
                + "digits, '.', '_', '-' or '/'?)")
        }
        return PublishPlan(mode: mode, branch: branch, reviewers: reviewers, chosenBy: chosenBy)
    }
}
