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
    /// The GitHub App token helper's binary: the agent-runner-job beside
    /// agent-runner (`ChildLocator.besideThisBinary`), nil when missing.
    public let helperPath: String?

    /// `helperPath` is the agent-runner-job installed beside this binary:
    /// never AGENT_RUNNER_JOB_PATH, which chooses the job child only.
    public init(config: RunnerConfiguration, store: JobStore, helperPath: String? = ChildLocator.besideThisBinary) {
        self.config = config
        self.store = store
        self.helperPath = helperPath
    }

    /// The token helper's executable. It receives the App's private key, so
    /// it is always the agent-runner-job that ships beside agent-runner, never
    /// the configured job child (AGENT_RUNNER_JOB_PATH may name any
    /// executable). Missing: `push_auth_failed` naming the path (the source
    /// yields no credential; a retry would not install it).
    static func helperExecutable(_ helperPath: String?) throws -> String {
        guard let helperPath else {
            throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=github-app: the token helper is agent-runner-job beside "
                + "agent-runner (\(ChildLocator.siblingPath)), which is missing or not executable: install both binaries "
                + "in one directory (AGENT_RUNNER_JOB_PATH chooses the job child only, never the token helper)")
        }
        return helperPath
    }

    /// Why no token is offered to `repoURL`'s remote, which is http(s) on a
    /// host outside GIT_TOKEN_HOSTS (the App's own host for `github-app`);
    /// nil when one may be (or none is needed).
    public func withheldReason(repoURL: String?) -> String? {
        config.gitToken.tokenHosts.refusal(repoURL.flatMap { try? RepositoryRemote($0) })
    }

    /// The token for pushing `job` to `repoURL`; nil when none is needed (no
    /// http(s) remote), when the remote's host is not one a token may go to
    /// (`withheldReason`), or, for `env`, when GITHUB_TOKEN is unset.
    public func pushToken(for job: ClaimedJob, repoURL: String?) async throws -> String? {
        let settings = config.gitToken
        guard let repoURL, let remote = try? RepositoryRemote(repoURL), remote.http != nil,
              settings.tokenHosts.allow(remote) else { return nil }
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
            return try await mintInstallationToken(repoURL: repoURL, pushUser: try await githubLogin(of: job))
        }
    }

    /// The job's user's GitHub login (GIT_USER_LOGIN_FIELD of the user
    /// document), for GitHub's push permission check; `push_auth_failed`
    /// naming the check when there is none.
    func githubLogin(of job: ClaimedJob) async throws -> String {
        let settings = config.gitToken
        let why = "GIT_TOKEN_SOURCE=github-app: the push permission check needs the job's user's GitHub login"
        guard let user = job.job.userId else { throw JobFailure(.pushAuthFailed, why + ", and the job has no userId (nor user_id)") }
        let login: String?
        do {
            login = try await store.userString(userId: user, collection: settings.userCollection, field: settings.userLoginField)
        } catch {
            throw JobFailure(.pushFailed, "GIT_TOKEN_SOURCE=github-app: cannot read \(settings.userCollection): \(error)")
        }
        guard let login else {
            throw JobFailure(.pushAuthFailed, why + ": user \(user) has no \(settings.userCollection).\(settings.userLoginField)")
        }
        guard GitHubAppTokenRequest.isLogin(login) else {
            throw JobFailure(.pushAuthFailed, why + ": user \(user)'s \(settings.userLoginField) is not a GitHub login")
        }
        return login
    }

    func mintInstallationToken(repoURL: String, pushUser: String) async throws -> String {
        let settings = config.gitToken
        guard let (owner, name) = RepositoryPath.ownerAndName(repoURL) else {
            throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=github-app: the repository URL names no owner/repository")
        }
        // Before the key is even read: it goes to no other binary.
        let helper = try Self.helperExecutable(helperPath)
        let pem: String
        do {
            // A file read: off the cooperative pool.
            let file = settings.appPrivateKeyFile ?? ""
            pem = try await onDedicatedThread { try String(contentsOfFile: file, encoding: .utf8) }
        } catch {
            throw JobFailure(.pushAuthFailed, "GIT_TOKEN_SOURCE=github-app: cannot read GITHUB_APP_PRIVATE_KEY_FILE "
                + (settings.appPrivateKeyFile ?? ""))
        }
        let request = GitHubAppTokenRequest(apiURL: settings.apiURL, appId: settings.appId ?? "", privateKeyPEM: pem,
                                            owner: owner, repository: name, pushUser: pushUser,
                                            pullRequests: config.child.publish.allowed.contains(.pullRequest))
        let reply = try await Self.runHelper(helper, request: request)
        if let token = reply.token { return token }
        let why = "GIT_TOKEN_SOURCE=github-app: no installation token for \(owner)/\(name): "
            + (reply.status.map { $0 == 0 ? "" : "HTTP \($0) " } ?? "") + (reply.error ?? "no reason given")
        // No answer or a server error may pass; a refusal will not.
        if let status = reply.status, status == 0 || status >= 500 { throw JobFailure(.pushFailed, why) }
        throw JobFailure(.pushAuthFailed, why)
    }

    /// `doctor --online` for GIT_TOKEN_SOURCE=github-app: asks GitHub, through
    /// the token helper, what the App and its installations lack of
    /// `GitHubAppTokenRequest.required` (`pull_requests: write` only when
    /// PUBLISH_MODES_ALLOWED allows pull requests). Nil: nothing; else why.
    public static func appPermissionProblem(_ config: RunnerConfiguration, helper: String) async -> String? {
        let settings = config.gitToken
        guard let file = settings.appPrivateKeyFile,
              let pem = try? await onDedicatedThread({ try String(contentsOfFile: file, encoding: .utf8) }) else {
            return "cannot read GITHUB_APP_PRIVATE_KEY_FILE"
        }
        var request = GitHubAppTokenRequest(apiURL: settings.apiURL, appId: settings.appId ?? "", privateKeyPEM: pem,
                                            owner: "", repository: "",
                                            pullRequests: config.child.publish.allowed.contains(.pullRequest))
        request.checkPermissions = true
        do {
            let reply = try await runHelper(helper, request: request)
            if let error = reply.error { return "GitHub did not answer the check: " + (reply.status.map { "HTTP \($0) " } ?? "") + error }
            let missing = reply.missing ?? []
            return missing.isEmpty ? nil : "missing permissions: " + missing.joined(separator: "; ")
        } catch {
            return "\(error)"
        }
    }

    /// Runs `<helper> --github-app-token` (the agent-runner-job beside this
    /// binary) with a clean environment and the request (holding the private
    /// key) on stdin; killed after 60 s.
    static func runHelper(_ helper: String, request: GitHubAppTokenRequest) async throws -> GitHubAppTokenReply {
        let input = Array(try JSONEncoder().encode(request))
        let child = try await onDedicatedThread {
            try ChildProcess(executable: helper, arguments: ["--github-app-token"],
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
            throw JobFailure(.pushFailed, "GIT_TOKEN_SOURCE=github-app: the token helper (\(helper) --github-app-token) "
                + "ended without an answer: \(status)")
        }
        return reply
    }
}

/// Hands the push token to a job child that asks for it, after its agent
/// phase: the one place that decides whether a child gets a push token.
struct PushTokenHandOver: Sendable {
    let config: RunnerConfiguration
    let store: JobStore

    /// Sends the push token once the child says the agent phase is over, and
    /// only if the job has no process but the child (`JobProcesses`: its
    /// cgroup, else every process below the child): no agent process can be
    /// there to read it. The token comes from GIT_TOKEN_SOURCE now, not
    /// earlier: it never exists while the agent runs. A token that cannot be
    /// had ends the child (its stdin closes) and is returned as the job's failure.
    /// Nothing goes to a child that is `fenced` (its lease lost or about to
    /// lapse), asked before and again right before the line is sent.
    func handOver(_ job: ClaimedJob, repoURL: String?, _ child: ChildProcess, cgroup: JobCgroup?,
                  logs: LogBatcher, redactor: Locked<Redactor>, egress: EgressReport? = nil,
                  fenced: @Sendable () -> Bool = { false }) async -> JobFailure? {
        func refuseFenced() async -> JobFailure {
            await logs.note("push token withheld: the job's lease is lost or about to lapse")
            child.closeInput()
            return JobFailure(.leaseLost, "the job's lease was lost before the push token was due")
        }
        if fenced() { return await refuseFenced() }
        let pid = child.pid
        // The token helper's path is looked up on the same thread (a file system call).
        guard let (listed, helper) = try? await onDedicatedThread({
            (JobProcesses.others(child: pid, cgroup: cgroup), ChildLocator.besideThisBinary)
        }), let others = listed else {
            await logs.add("push token withheld: the job's processes cannot be listed")
            child.closeInput()
            return JobFailure(.sandboxViolation, "the job's processes could not be listed when the push token was due, "
                + "so it was withheld (the supervisor reads \(cgroup.map { $0.procs } ?? "/proc"))")
        }
        if !others.isEmpty {
            await logs.add("push token withheld: \(others.count) process(es) besides the job child are still running")
            child.closeInput()
            return JobFailure(.sandboxViolation, "processes of the agent were still running when the push token was due")
        }
        let token: String?
        let provider = PushTokenProvider(config: config, store: store, helperPath: helper)
        do {
            if let reason = provider.withheldReason(repoURL: repoURL) {
                await logs.add("push token withheld: " + reason)
                token = nil
            } else {
                token = try await provider.pushToken(for: job, repoURL: repoURL)
            }
        } catch {
            child.closeInput()
            return error as? JobFailure ?? JobFailure(.pushFailed, "cannot get a push token: \(error)")
        }
        // Whatever the child relays from now on is cleaned of this token too.
        if let token { redactor.withLock { $0 = $0.adding(token) } }
        let secrets = ChildSecrets(githubToken: token, egress: egress)
        guard let line = try? JSONEncoder().encode(secrets) else { return nil }
        if fenced() { return await refuseFenced() }
        do {
            try await child.send(Array(line) + [0x0A])
        } catch {
            await logs.add("cannot hand the push token to the job child: \(error)")
        }
        return nil
    }
}
