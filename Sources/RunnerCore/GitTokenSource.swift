import Foundation

/// Where the token for http(s) pushes comes from (`GIT_TOKEN_SOURCE`).
public enum GitTokenSource: String, Sendable, Codable, CaseIterable {
    /// The global `GITHUB_TOKEN`.
    case env
    /// The job's user's own token, read from the database by the supervisor.
    case user
    /// An installation token minted per job for the one repository (GitHub App).
    case githubApp = "github-app"
}

/// The push-token settings, validated with the rest of the configuration.
public struct GitTokenSettings: Sendable {
    public var source: GitTokenSource
    /// `user`: the collection and field holding each user's token
    /// (`GIT_TOKEN_USER_COLLECTION`, `GIT_TOKEN_USER_FIELD`).
    public var userCollection: String
    public var userField: String
    /// `github-app`: `GITHUB_APP_ID` and `GITHUB_APP_PRIVATE_KEY_FILE` (PEM, read per job, never logged).
    public var appId: String?
    public var appPrivateKeyFile: String?
    /// GitHub's REST API (`GITHUB_API_URL`; GitHub Enterprise or a test server).
    public var apiURL: String
    /// The hosts a push token may go to (GIT_TOKEN_HOSTS); for `github-app`,
    /// only those on the App's own GitHub host (`appHost`).
    public var tokenHosts: [TokenHost]
    /// `github-app`: the field of the user document holding the user's GitHub
    /// login (GIT_USER_LOGIN_FIELD), whose push permission is checked.
    public var userLoginField: String

    public init(source: String, userCollection: String, userField: String, appId: String?, appPrivateKeyFile: String?,
                apiURL: String, tokenHosts: String = "", userLoginField: String = "github_login") throws {
        guard let s = GitTokenSource(rawValue: source) else {
            throw ConfigurationError("GIT_TOKEN_SOURCE", "must be env, user or github-app")
        }
        self.source = s
        let name = #"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$"#
        guard userCollection.range(of: name, options: .regularExpression) != nil else {
            throw ConfigurationError("GIT_TOKEN_USER_COLLECTION", "'\(userCollection)' is not a collection name")
        }
        guard userField.range(of: name, options: .regularExpression) != nil else {
            throw ConfigurationError("GIT_TOKEN_USER_FIELD", "'\(userField)' is not a field name (dotted paths allowed)")
        }
        guard userLoginField.range(of: name, options: .regularExpression) != nil else {
            throw ConfigurationError("GIT_USER_LOGIN_FIELD", "'\(userLoginField)' is not a field name (dotted paths allowed)")
        }
        self.userCollection = userCollection
        self.userField = userField
        self.userLoginField = userLoginField
        guard let api = URLParts(apiURL) else {
            throw ConfigurationError("GITHUB_API_URL", "must be an http(s) URL")
        }
        self.apiURL = apiURL
        self.appId = appId
        self.appPrivateKeyFile = appPrivateKeyFile
        let hosts = try TokenHost.parseList(tokenHosts)
        guard s == .githubApp else { self.tokenHosts = hosts; return }
        guard let appId, !appId.isEmpty, appId.allSatisfy(\.isNumber) else {
            throw ConfigurationError("GITHUB_APP_ID", "GIT_TOKEN_SOURCE=github-app needs the app's numeric id")
        }
        guard let file = appPrivateKeyFile, file.hasPrefix("/") else {
            throw ConfigurationError("GITHUB_APP_PRIVATE_KEY_FILE", "GIT_TOKEN_SOURCE=github-app needs the absolute path of the app's private key (PEM)")
        }
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw ConfigurationError("GITHUB_APP_PRIVATE_KEY_FILE", "\(file) is not a readable file")
        }
        // An App's tokens open its own GitHub's repositories only.
        let appHost = Self.appHost(api)
        self.tokenHosts = hosts.filter { $0.host == appHost }
        guard !self.tokenHosts.isEmpty else {
            throw ConfigurationError("GIT_TOKEN_HOSTS", "GIT_TOKEN_SOURCE=github-app mints tokens for the App's GitHub "
                + "host \(appHost) (from GITHUB_API_URL) only, and GIT_TOKEN_HOSTS does not list it")
        }
    }
}

/// `agent-runner-job --github-app-token`: mints a GitHub App installation
/// token in the job child's binary (which links libcurl), so the supervisor
/// does not. The request arrives on stdin (it holds the
/// private key, which must never be in argv); the reply is one JSON line.
public struct GitHubAppTokenRequest: Sendable, Codable {
    public var apiURL: String
    public var appId: String
    public var privateKeyPEM: String
    public var owner: String
    public var repository: String
    /// The job's user's GitHub login: before the push token is minted, GitHub
    /// must say this user may push to the repository (admin, maintain or write).
    public var pushUser: String?
    /// The token may also open and update pull requests (`pull_requests:
    /// write`): asked when PUBLISH_MODES_ALLOWED allows `pull-request`.
    public var pullRequests: Bool?
    /// `doctor --online`: no token; the App's and its installations'
    /// permissions are checked against `GitHubAppTokenRequest.required` instead.
    public var checkPermissions: Bool?

    /// The permissions the runner needs of a GitHub App: `contents: write`,
    /// `metadata: read`, and `pull_requests: write` when pull requests are allowed.
    public static func required(pullRequests: Bool) -> [String: String] {
        var p = ["contents": "write", "metadata": "read"]
        if pullRequests { p["pull_requests"] = "write" }
        return p
    }

    public init(apiURL: String, appId: String, privateKeyPEM: String, owner: String, repository: String,
                pushUser: String? = nil, pullRequests: Bool? = nil) {
        self.pullRequests = pullRequests
        self.apiURL = apiURL
        self.appId = appId
        self.privateKeyPEM = privateKeyPEM
        self.owner = owner
        self.repository = repository
        self.pushUser = pushUser
    }

    /// A GitHub login as GitHub allows it: letters, digits and single inner
    /// hyphens, 1-39 characters (it goes into an API path).
    public static func isLogin(_ s: String) -> Bool {
        s.count <= 39 && s.range(of: #"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$"#, options: .regularExpression) != nil
    }
}

extension GitTokenSettings {
    /// The GitHub host whose repositories an App's API serves: github.com for
    /// api.github.com, else the API's own host (GitHub Enterprise:
    /// `https://HOST/api/v3`).
    public static func appHost(_ api: URLParts) -> String {
        api.host == "api.github.com" ? "github.com" : api.host
    }
}

/// The helper's answer: a token, or the HTTP status and GitHub's message.
public struct GitHubAppTokenReply: Sendable, Codable, CustomStringConvertible {
    public var token: String?
    public var expiresAt: String?
    /// The HTTP status that refused (0: no answer at all).
    public var status: Int?
    public var error: String?
    /// For a permission check: what the App or an installation lacks (empty: nothing).
    public var missing: [String]?

    public init(token: String? = nil, expiresAt: String? = nil, status: Int? = nil, error: String? = nil) {
        self.token = token
        self.expiresAt = expiresAt
        self.status = status
        self.error = error
    }

    public var description: String { token == nil ? "GitHubAppTokenReply(\(status ?? 0): \(error ?? ""))" : "GitHubAppTokenReply(token)" }
}

/// `owner` and `name` of a GitHub repository URL (`https://host/owner/name(.git)`):
/// exactly two path segments of letters, digits, `.`, `_` and `-`.
public enum RepositoryPath {
    public static func ownerAndName(_ url: String) -> (owner: String, name: String)? {
        guard let parts = URLParts(url) else { return nil }
        let segments = parts.path.split(separator: "/").map(String.init)
        guard segments.count == 2 else { return nil }
        var name = segments[1]
        if name.hasSuffix(".git") { name.removeLast(4) }
        let owner = segments[0]
        let allowed = #"^[A-Za-z0-9._-]+$"#
        guard owner.range(of: allowed, options: .regularExpression) != nil,
              name.range(of: allowed, options: .regularExpression) != nil else { return nil }
        return (owner, name)
    }
}
