import Foundation
import RunnerCore

/// What a pull request says and asks for.
public struct PullRequestDraft: Sendable {
    public var title: String
    public var body: String
    public var draft: Bool
    public var labels: [String]
    public var reviewers: [String]

    public init(title: String, body: String, draft: Bool, labels: [String], reviewers: [String]) {
        self.title = title
        self.body = body
        self.draft = draft
        self.labels = labels
        self.reviewers = reviewers
    }
}

/// The job's repository on GitHub (owner and name from the remote URL's
/// path), through its REST API at GITHUB_API_URL, with the push token. The
/// token goes to the API only when the API serves the remote's own host
/// (`GitTokenSettings.appHost`: api.github.com for github.com, else the same
/// host) and that remote may have the token (GIT_TOKEN_HOSTS). Every
/// refusal becomes a `JobFailure` naming GitHub's status and message.
public struct GitHubRepository {
    let api: GitHubAPI

    /// Nil with the reason when no pull request can be opened for `remote`:
    /// not an http(s) remote, or one on another host than the API's.
    public static func reason(remote: RepositoryRemote?, apiURL: String) -> String? {
        guard let url = remote?.http else { return "the remote is not a GitHub repository over https" }
        guard let api = URLParts(apiURL), GitTokenSettings.appHost(api) == url.host else {
            return "GITHUB_API_URL (\(apiURL)) serves \(URLParts(apiURL).map { GitTokenSettings.appHost($0) } ?? "?"), "
                + "not the remote's host \(url.host): the token is not sent there"
        }
        return nil
    }

    /// The repository of `remote` (checked with `reason` first); `repository_not_found` when its path names none.
    public init(remote: RepositoryRemote, apiURL: String, token: String, proxy: String?, log: @escaping (String) -> Void,
                sleep: ((Int) -> Void)? = nil) throws {
        guard let (owner, name) = RepositoryPath.ownerAndName(remote.url) else {
            throw JobFailure(.repositoryNotFound, "the repository URL's path names no GitHub owner/repository")
        }
        api = sleep.map { GitHubAPI(apiURL: apiURL, owner: owner, repo: name, token: token, proxy: proxy, log: log, sleep: $0) }
            ?? GitHubAPI(apiURL: apiURL, owner: owner, repo: name, token: token, proxy: proxy, log: log)
    }

    /// The repository's default branch, as GitHub says (never assumed).
    public func defaultBranch() throws -> String {
        let repo = try call("read the repository", "GET", "", notFound: .repositoryNotFound)
        guard let branch = repo["default_branch"]?.stringValue, RunnerConfiguration.isSafeRefName(branch) else {
            throw JobFailure(.pullRequestFailed, "GitHub's answer for \(api.fullName) names no valid default_branch")
        }
        return branch
    }

    /// Whether GitHub protects `branch` (false when it does not exist).
    public func isProtected(_ branch: String) throws -> Bool {
        do {
            return try api.call("GET", "/branches/\(Self.escape(branch))")["protected"]?.boolValue == true
        } catch let e as GitHubAPIError where e.status == 404 {
            return false
        } catch let e as GitHubAPIError {
            throw failure(e, doing: "read branch \(branch)")
        }
    }

    /// Updates the open pull request from `head` (there is at most one: a
    /// rerun never opens a second), else opens one against `base`; then its
    /// labels and reviewers.
    public func openOrUpdate(head: String, base: String, headSha: String, _ pr: PullRequestDraft) throws -> PullRequestInfo {
        let open = try call("list the pull requests", "GET",
                            "/pulls?state=open&head=\(Self.escape(api.owner)):\(Self.escape(head))&per_page=10")
        var answer: JSONValue
        let action: String
        if let existing = open.arrayValue?.first(where: { $0["head"]?["ref"]?.stringValue == head }),
           let number = existing["number"]?.intValue {
            answer = try call("update pull request #\(number)", "PATCH", "/pulls/\(number)",
                              body: ["title": .string(pr.title), "body": .string(pr.body)])
            action = "updated"
        } else {
            answer = try call("open the pull request", "POST", "/pulls",
                              body: ["title": .string(pr.title), "head": .string(head), "base": .string(base),
                                     "body": .string(pr.body), "draft": .bool(pr.draft)])
            action = "created"
        }
        guard let number = answer["number"]?.intValue, let url = answer["html_url"]?.stringValue else {
            throw JobFailure(.pullRequestFailed, "GitHub's answer for the pull request has no number or html_url")
        }
        if !pr.labels.isEmpty {
            _ = try call("label pull request #\(number)", "POST", "/issues/\(number)/labels",
                         body: ["labels": .array(pr.labels.map(JSONValue.string))])
        }
        if !pr.reviewers.isEmpty {
            _ = try call("request reviewers for pull request #\(number)", "POST", "/pulls/\(number)/requested_reviewers",
                         body: ["reviewers": .array(pr.reviewers.map(JSONValue.string))])
        }
        return PullRequestInfo(number: Int(number), url: LogBounds.clip(url, bytes: 512), branch: head, base: base,
                               headSha: answer["head"]?["sha"]?.stringValue ?? headSha,
                               state: answer["state"]?.stringValue.map { LogBounds.clip($0, bytes: 32) } ?? "open",
                               action: action, draft: answer["draft"]?.boolValue)
    }

    private func call(_ doing: String, _ method: String, _ path: String, body: JSONValue? = nil,
                      notFound: JobErrorCode = .pullRequestFailed) throws -> JSONValue {
        do {
            return try api.call(method, path, body: body)
        } catch let e as GitHubAPIError {
            throw failure(e, doing: doing, notFound: notFound)
        }
    }

    /// A refusal as the job's failure: its code by GitHub's status and headers, its message quoting GitHub's.
    func failure(_ e: GitHubAPIError, doing: String, notFound: JobErrorCode = .pullRequestFailed) -> JobFailure {
        let repo = api.fullName
        let said = "GitHub: HTTP \(e.status): \(e.message)"
        if e.proxyStatus != 0, e.proxyStatus != 200 {
            return JobFailure(.pullRequestFailed, "cannot \(doing): the job's egress proxy refused the connection to "
                + "GITHUB_API_URL's host (HTTP \(e.proxyStatus))", retryable: e.proxyStatus != 403)
        }
        if e.status == 0 { return JobFailure(.pullRequestFailed, "cannot \(doing): no answer from GitHub: \(e.message)") }
        if e.rateLimited {
            return JobFailure(.rateLimited, "cannot \(doing): GitHub's rate limit"
                + (e.retryAfter.map { " (Retry-After \($0) s)" } ?? "") + "; \(said)")
        }
        switch e.status {
        case 404 where notFound == .repositoryNotFound:
            return JobFailure(.repositoryNotFound, "GitHub has no repository \(repo), or the token cannot see it; \(said)")
        case 401:
            return JobFailure(.pullRequestForbidden, "cannot \(doing): GitHub refused the token; \(said)")
        case 403:
            return JobFailure(.pullRequestForbidden, "cannot \(doing): the token lacks pull_requests: write on \(repo) "
                + "(a GitHub App needs contents: write, pull_requests: write and metadata: read); \(said)")
        case 422:
            return JobFailure(.pullRequestInvalid, "cannot \(doing): GitHub refused it as invalid; \(said)")
        default:
            return JobFailure(.pullRequestFailed, "cannot \(doing): \(said)")
        }
    }

    /// A path segment or query value, percent-escaped (branch names may hold `/`):
    /// only letters, digits and `-._~` are left as they are.
    public static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn:
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")) ?? s
    }
}
