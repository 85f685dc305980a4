#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import RunnerCore

/// The token a job's http(s) push uses, by GIT_TOKEN_SOURCE: the global
/// GITHUB_TOKEN (`env`), the job's user's own token (`user`), or an
/// installation token minted for the one repository (`github-app`, by
/// `agent-runner-job --github-app-token`, so this process does not link
/// libcurl). Tokens are returned, never stored or logged. A
/// missing or refused credential is `push_auth_failed` naming the source.
public struct PushTokenProvider: Sendable {
    public let config: RunnerConfiguration
    public let store: JobStore
    /// The job child's binary (for `--github-app-token`).
    public let childPath: String

    public init(config: RunnerConfiguration, store: JobStore, childPath: String) {
        self.config = config
        self.store = store
        self.childPath = childPath
    }

    /// The token for pushing `job` to `repoURL`; nil when none is needed (no
    /// http(s) remote) or, for `env`, when GITHUB_TOKEN is unset.
    public func pushToken(for job: ClaimedJob, repoURL: String?) async throws -> String? {
        let settings = config.gitToken
        guard settings.source != .env else { return config.githubToken }
        guard let repoURL, repoURL.lowercased().hasPrefix("http://") || repoURL.lowercased().hasPrefix("https://") else {
            return nil
        }
        switch settings.source {
        case .env: return config.githubToken
        case .user:
            guard let user = job.job.userId else {
                throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=user: the job has no userId (nor user_id)")
            }
            let token: String?
            do {
                token = try await store.userToken(userId: user, collection: settings.userCollection, field: settings.userField)
            } catch {
                throw JobFailure(.pushFailed, "GIT_TOKEN_SOURCE=user: cannot read \(settings.userCollection): \(error)")
            }
            guard let token else {
                throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=user: user \(user) has no "
                    + "\(settings.userCollection).\(settings.userField)")
            }
            return token
        case .githubApp:
            return try await mintInstallationToken(repoURL: repoURL)
        }
    }

    func mintInstallationToken(repoURL: String) async throws -> String {
        let settings = config.gitToken
        guard let (owner, name) = RepositoryPath.ownerAndName(repoURL) else {
            throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=github-app: the repository URL names no owner/repository")
        }
        let pem: String
        do {
            pem = try String(contentsOfFile: settings.appPrivateKeyFile ?? "", encoding: .utf8)
        } catch {
            throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=github-app: cannot read GITHUB_APP_PRIVATE_KEY_FILE "
                + (settings.appPrivateKeyFile ?? ""))
        }
        let request = GitHubAppTokenRequest(apiURL: settings.apiURL, appId: settings.appId ?? "", privateKeyPEM: pem,
                                            owner: owner, repository: name)
        let reply = try await Self.runHelper(childPath, request: request)
        if let token = reply.token { return token }
        let why = "GIT_TOKEN_SOURCE=github-app: GitHub refused an installation token for \(owner)/\(name): "
            + (reply.status.map { $0 == 0 ? "" : "HTTP \($0) " } ?? "") + (reply.error ?? "no reason given")
        // No answer or a server error may pass; a refusal will not.
        if let status = reply.status, status == 0 || status >= 500 { throw JobFailure(.pushFailed, why) }
        throw JobFailure(.pushAuthFailed, why)
    }

    /// Runs `agent-runner-job --github-app-token` with a clean environment and
    /// the request (holding the private key) on stdin; killed after 60 s.
    static func runHelper(_ childPath: String, request: GitHubAppTokenRequest) async throws -> GitHubAppTokenReply {
        let input = Array(try JSONEncoder().encode(request))
        let child = try await onDedicatedThread {
            try ChildProcess(executable: childPath, arguments: ["--github-app-token"],
                             environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"], stdin: input)
        }
        let timer = Task { try await Task.sleep(for: .seconds(60)); child.signalGroup(SIGKILL) }
        defer { timer.cancel() }
        var last: String?
        for await line in child.output {
            if case .stdout(let text) = line, text.hasPrefix("{") { last = text }
        }
        let status = await child.waitForExit()
        guard status == .exited(0), let last,
              let reply = try? JSONDecoder().decode(GitHubAppTokenReply.self, from: Data(last.utf8)) else {
            throw JobFailure(.pushFailed, "GIT_TOKEN_SOURCE=github-app: the token helper (\(childPath) --github-app-token) "
                + "ended without an answer: \(status)")
        }
        return reply
    }
}

extension JobRunner {
    /// The push token for `job` (its project's repository), by GIT_TOKEN_SOURCE.
    func pushToken(for job: ClaimedJob) async throws -> String? {
        let project = try await job.projectId.asyncFlatMap { try await store.resolveProject($0) }
        return try await pushToken(for: job, repoURL: project?.repoURL)
    }

    func pushToken(for job: ClaimedJob, repoURL: String?) async throws -> String? {
        try await PushTokenProvider(config: config, store: store, childPath: childPath).pushToken(for: job, repoURL: repoURL)
    }
}

extension Optional {
    func asyncFlatMap<U>(_ f: (Wrapped) async throws -> U?) async rethrows -> U? {
        guard let v = self else { return nil }
        return try await f(v)
    }
}
