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

    public init(source: String, userCollection: String, userField: String, appId: String?, appPrivateKeyFile: String?,
                apiURL: String) throws {
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
        self.userCollection = userCollection
        self.userField = userField
        guard apiURL.hasPrefix("https://") || apiURL.hasPrefix("http://") else {
            throw ConfigurationError("GITHUB_API_URL", "must be an http(s) URL")
        }
        self.apiURL = apiURL
        self.appId = appId
        self.appPrivateKeyFile = appPrivateKeyFile
        guard s == .githubApp else { return }
        guard let appId, !appId.isEmpty, appId.allSatisfy(\.isNumber) else {
            throw ConfigurationError("GITHUB_APP_ID", "GIT_TOKEN_SOURCE=github-app needs the app's numeric id")
        }
        guard let file = appPrivateKeyFile, file.hasPrefix("/") else {
            throw ConfigurationError("GITHUB_APP_PRIVATE_KEY_FILE", "GIT_TOKEN_SOURCE=github-app needs the absolute path of the app's private key (PEM)")
        }
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw ConfigurationError("GITHUB_APP_PRIVATE_KEY_FILE", "\(file) is not a readable file")
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

    public init(apiURL: String, appId: String, privateKeyPEM: String, owner: String, repository: String) {
        self.apiURL = apiURL
        self.appId = appId
        self.privateKeyPEM = privateKeyPEM
        self.owner = owner
        self.repository = repository
    }
}

/// The helper's answer: a token, or the HTTP status and GitHub's message.
public struct GitHubAppTokenReply: Sendable, Codable, CustomStringConvertible {
    public var token: String?
    public var expiresAt: String?
    /// The HTTP status that refused (0: no answer at all).
    public var status: Int?
    public var error: String?

    public init(token: String? = nil, expiresAt: String? = nil, status: Int? = nil, error: String? = nil) {
        self.token = token
        self.expiresAt = expiresAt
        self.status = status
        self.error = error
    }

    public var description: String { token == nil ? "GitHubAppTokenReply(\(status ?? 0): \(error ?? ""))" : "GitHubAppTokenReply(token)" }
}

/// `owner` and `name` of a repository URL's path (`https://host/owner/name(.git)`).
public enum RepositoryPath {
    public static func ownerAndName(_ url: String) -> (owner: String, name: String)? {
        guard let u = URL(string: url), ["http", "https"].contains(u.scheme?.lowercased() ?? "") else { return nil }
        let parts = u.path.split(separator: "/").map(String.init)
        guard parts.count >= 2 else { return nil }
        var name = parts[parts.count - 1]
        if name.hasSuffix(".git") { name.removeLast(4) }
        let owner = parts[parts.count - 2]
        guard !owner.isEmpty, !name.isEmpty else { return nil }
        return (owner, name)
    }
}
