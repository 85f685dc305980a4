import Foundation

/// A configuration value that is missing or invalid. The supervisor exits 78
/// (EX_CONFIG) with this message, which always names the variable.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public let variable: String
    public let reason: String
    public init(_ variable: String, _ reason: String) {
        self.variable = variable
        self.reason = reason
    }
    public var description: String { "configuration error: \(variable): \(reason)" }
}

/// How the executables write their log lines (LOG_FORMAT).
public enum LogFormat: String, Sendable, CaseIterable {
    /// One JSON object per line, for a log collector.
    case json
    /// Human-readable lines (swift-log's stream handler).
    case text
}

/// What to keep of a job's workspace after it ends.
public enum KeepWorkspaces: String, Sendable, Codable, CaseIterable {
    case always, failed, never
}

/// The runner's validated configuration (docs/contract.md, Configuration). Built once at start from
/// the environment plus an optional `.env` file; every value is checked.
public struct RunnerConfiguration: Sendable {
    public var mongoURI: String
    public var databaseName: String
    public var geminiAPIKey: String?
    public var githubToken: String?
    /// Where http(s) push tokens come from (GIT_TOKEN_SOURCE and its settings).
    public var gitToken: GitTokenSettings
    public var pollSeconds: Double
    public var workdirRoot: String
    public var concurrency: Int
    public var leaseSeconds: Int
    public var jobTimeoutSeconds: Int
    public var maxAttempts: Int
    public var shutdownGraceSeconds: Int
    public var keepWorkspaces: KeepWorkspaces
    /// What a job child needs of this configuration (generators, Cline and
    /// Gemini settings, git identity, sandbox and limits, JOB_NETWORK): one
    /// value, sent whole in every ticket.
    public var child: ChildSettings
    /// The absolute path of the `.env` file the settings came from, if any
    /// (hidden from job children: `child.sandboxHiddenPaths` follows it).
    public var envFilePath: String? {
        didSet { child.sandboxHiddenPaths = ChildSettings.hiddenPaths(envFile: envFilePath) }
    }
    public var metricsAddress: String?
    public var logFormat: LogFormat
    public var logLevel: String
    public var jobExecutablePath: String?
    public var logCap: Int
    /// JOB_EVENTS_TTL_DAYS: how long a job's events are kept (the TTL index of `job_events`).
    public var eventsTTLDays: Int
    /// JOB_UID_RANGE: when set (and the supervisor runs as root), each job
    /// child runs as its own uid = gid from this range; nil: children share
    /// the supervisor's uid.
    public var jobUIDRange: ClosedRange<Int>?
    /// CLINE_API_KEY: the provider key. Held by the supervisor and the job's
    /// egress proxy only; never in a ticket, the agent's reach, argv or a log.
    public var clineAPIKey: String?
    /// CLINE_PROVIDER_HEADERS: headers the egress proxy adds to every
    /// provider-route request (organisation, project, beta); secret like the
    /// key: held by the supervisor and the proxy only, never logged.
    public var clineProviderHeaders: [ProviderHeader]
    /// JOB_EGRESS_ALLOW: extra egress rules, added to the job's git remote rule (`EgressRule.derived`).
    public var egressAllow: [EgressRule]
    /// GIT_ALLOWED_SCHEMES and GIT_LOCAL_REMOTE_ROOTS: which repository URLs a
    /// job may have, checked before anything of the job is made.
    public var remotePolicy: RemotePolicy
    /// DASHBOARD_TOKEN: the operators' sign-in secret for `agent-runner dashboard`
    /// (required there only; at least 16 characters).
    public var dashboardToken: String?
    /// JOB_BUDGET_* and MODEL_PRICES_FILE: what a job's model calls may cost, enforced by its egress proxy.
    public var spend: SpendSettings
    /// Stopped jobs' partial work (CHECKPOINT_*, RESUME_FROM_CHECKPOINT).
    public var checkpoint: CheckpointSettings

    /// Every variable the runner reads, with its default ("" = unset), for
    /// `.env.example`, `doctor` and tests.
    public static let defaults: [(name: String, value: String)] = [
        ("MONGODB_URI", ""), ("MONGO_DB_NAME", "architex"),
        ("GOOGLE_GEMINI_API_KEY", ""), ("GEMINI_MODEL", "gemini-flash-latest"),
        ("GEMINI_API_BASE", "https://generativelanguage.googleapis.com"), ("GEMINI_TIMEOUT_SECONDS", "300"),
        ("GITHUB_TOKEN", ""), ("RUNNER_POLL_SECONDS", "2"), ("WORKDIR_ROOT", "/tmp/agent-runner"),
        ("GIT_AUTHOR_NAME", "Architex Bot"), ("GIT_AUTHOR_EMAIL", "bot@architex.local"),
        ("CLONE_DEFAULT_BRANCH", "main"), ("CLONE_REMOTE_NAME", "origin"),
        ("CLINE_ENABLED", "true"), ("CLINE_CMD", "cline"),
        ("CLINE_ARGS", "-y --json -c {repo} -t {timeout} {prompt}"), ("CLINE_TIMEOUT_SECONDS", "1200"),
        ("RUNNER_CONCURRENCY", "2"), ("LEASE_SECONDS", "30"), ("JOB_TIMEOUT_SECONDS", "1800"),
        ("JOB_MAX_ATTEMPTS", "3"), ("SHUTDOWN_GRACE_SECONDS", "60"), ("KEEP_WORKSPACES", "failed"),
        ("GENERATORS", "cline,gemini,scaffold"), ("JOB_MEMORY_MB", "4096"), ("JOB_CPU_SECONDS", "1800"),
        ("JOB_MAX_FILE_MB", "1"), ("JOB_MAX_FILES", "2000"), ("JOB_MAX_TOTAL_MB", "50"),
        ("SANDBOX", "enforce"), ("SANDBOX_READ_PATHS", ""), ("METRICS_ADDR", ""),
        ("LOG_FORMAT", "text"), ("LOG_LEVEL", "info"), ("AGENT_RUNNER_JOB_PATH", ""), ("JOB_LOG_CAP", "1000"),
        ("JOB_UID_RANGE", ""), ("CLINE_PROVIDER", ""), ("CLINE_MODEL", ""), ("CLINE_API_KEY", ""),
        ("CLINE_PROVIDER_HEADERS", ""),
        ("AIDER_CMD", "aider"), ("AIDER_MODEL", ""), ("MINI_SWE_AGENT_CMD", "mini"), ("MINI_SWE_AGENT_MODEL", ""),
        ("MINI_SWE_AGENT_STEP_LIMIT", "50"), ("AGENTS_ALLOWED", ""),
        ("JOB_NETWORK", "proxy"), ("JOB_EGRESS_ALLOW", ""), ("JOB_MAX_PROCESSES", "256"),
        ("DASHBOARD_TOKEN", ""), ("GIT_TOKEN_SOURCE", "env"), ("GIT_TOKEN_USER_COLLECTION", "users"),
        ("GIT_TOKEN_USER_FIELD", "github_access_token"), ("GITHUB_APP_ID", ""), ("GITHUB_APP_PRIVATE_KEY_FILE", ""),
        ("GITHUB_API_URL", "https://api.github.com"),
        ("JOB_LOG_LINE_BYTES", "\(LogBounds.defaultLineBytes)"), ("JOB_LOG_BYTES", "\(LogBounds.defaultJobBytes)"),
        // Repository URLs and where push tokens may go.
        ("GIT_ALLOWED_SCHEMES", "https"), ("GIT_LOCAL_REMOTE_ROOTS", ""), ("GIT_TOKEN_HOSTS", "github.com"),
        ("GIT_USER_LOGIN_FIELD", "github_login"),
        // Publishing: push, a branch, or a pull request.
        ("PUBLISH_MODE", "push"), ("PUBLISH_MODES_ALLOWED", ""), ("PUBLISH_BRANCH", "architex/{projectSlug}"),
        ("PULL_REQUEST_DRAFT", "false"), ("PULL_REQUEST_LABELS", ""), ("DASHBOARD_URL", ""),
        // Model-call spend (docs/budgets.md).
        ("JOB_BUDGET_USD", ""), ("JOB_BUDGET_TOKENS", ""), ("JOB_BUDGET_REQUESTS", ""), ("MODEL_PRICES_FILE", ""),
        ("PROVIDER_RETRIES", "4"), ("PROVIDER_RETRY_WAIT_SECONDS", "90"),
        ("USER_DAILY_BUDGET_USD", ""), ("PROJECT_DAILY_BUDGET_USD", ""), ("DAILY_BUDGET_ACTION", "wait"),
        // Partial work of a stopped job (docs/budgets.md, "Checkpoints").
        ("CHECKPOINT_ON", "budget,timeout,cancel"), ("CHECKPOINT_BRANCH", "agent-runner/wip/{jobId}"),
        ("CHECKPOINT_GRACE_SECONDS", "60"), ("RESUME_FROM_CHECKPOINT", "false"),
        // The job's event stream (job_events).
        ("JOB_EVENTS_MAX", "\(ChildSettings.defaultEventsMax)"), ("JOB_EVENTS_TTL_DAYS", "30"),
    ]

    /// Validates `environment` (with `.env` values underneath it).
    public init(environment: [String: String]) throws {
        let r = ConfigReader(environment)
        mongoURI = try r.required("MONGODB_URI")
        guard mongoURI.hasPrefix("mongodb://") || mongoURI.hasPrefix("mongodb+srv://") else {
            throw ConfigurationError("MONGODB_URI", "must start with mongodb:// or mongodb+srv://")
        }
        databaseName = r.string("MONGO_DB_NAME")
        guard !databaseName.isEmpty, databaseName.range(of: #"^[A-Za-z0-9_-]{1,63}$"#, options: .regularExpression) != nil
        else { throw ConfigurationError("MONGO_DB_NAME", "must be 1-63 letters, digits, '_' or '-'") }
        geminiAPIKey = r.optional("GOOGLE_GEMINI_API_KEY")
        child = try ChildSettings(r)
        githubToken = r.optional("GITHUB_TOKEN")
        gitToken = try GitTokenSettings(source: r.string("GIT_TOKEN_SOURCE"), userCollection: r.string("GIT_TOKEN_USER_COLLECTION"),
                                        userField: r.string("GIT_TOKEN_USER_FIELD"), appId: r.optional("GITHUB_APP_ID"),
                                        appPrivateKeyFile: r.optional("GITHUB_APP_PRIVATE_KEY_FILE"),
                                        apiURL: r.string("GITHUB_API_URL"), tokenHosts: r.string("GIT_TOKEN_HOSTS"),
                                        userLoginField: r.string("GIT_USER_LOGIN_FIELD"))
        child.tokenHosts = gitToken.tokenHosts
        child.publish.apiURL = gitToken.apiURL
        pollSeconds = try r.double("RUNNER_POLL_SECONDS", 0.05...3600)
        workdirRoot = r.string("WORKDIR_ROOT")
        guard workdirRoot.hasPrefix("/") else { throw ConfigurationError("WORKDIR_ROOT", "must be an absolute path") }
        remotePolicy = try RemotePolicy(r, workdirRoot: workdirRoot)
        concurrency = try r.int("RUNNER_CONCURRENCY", 1...256)
        leaseSeconds = try r.int("LEASE_SECONDS", 3...3600)
        jobTimeoutSeconds = try r.int("JOB_TIMEOUT_SECONDS", 1...86_400)
        maxAttempts = try r.int("JOB_MAX_ATTEMPTS", 1...100)
        shutdownGraceSeconds = try r.int("SHUTDOWN_GRACE_SECONDS", 0...3600)
        guard let keep = KeepWorkspaces(rawValue: r.string("KEEP_WORKSPACES")) else {
            throw ConfigurationError("KEEP_WORKSPACES", "must be always, failed or never")
        }
        keepWorkspaces = keep
        metricsAddress = r.optional("METRICS_ADDR")
        guard let format = LogFormat(rawValue: r.string("LOG_FORMAT")) else {
            throw ConfigurationError("LOG_FORMAT", "must be json or text")
        }
        logFormat = format
        logLevel = r.string("LOG_LEVEL")
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw ConfigurationError("LOG_LEVEL", "must be trace, debug, info, notice, warning, error or critical")
        }
        jobExecutablePath = r.optional("AGENT_RUNNER_JOB_PATH")
        logCap = try r.int("JOB_LOG_CAP", 10...1_000_000)
        // The stored log's bound: JOB_LOG_CAP lines of at most JOB_LOG_LINE_BYTES (child.logLineBytes).
        guard logCap * child.logLineBytes <= LogBounds.maxStoredBytes else {
            throw ConfigurationError("JOB_LOG_CAP", "JOB_LOG_CAP × JOB_LOG_LINE_BYTES = \(logCap) × \(child.logLineBytes) "
                + "must be at most \(LogBounds.maxStoredBytes) bytes (the job document stays under MongoDB's 16 MiB)")
        }
        // The TTL index's expireAfterSeconds (days × 86400) must fit a 32-bit integer: 24,855 days at most.
        eventsTTLDays = try r.int("JOB_EVENTS_TTL_DAYS", 1...24_855)
        jobUIDRange = try r.optional("JOB_UID_RANGE").map(Self.parseUIDRange)
        clineAPIKey = r.optional("CLINE_API_KEY")
        clineProviderHeaders = try ProviderHeader.parse(r.string("CLINE_PROVIDER_HEADERS"))
        egressAllow = try r.string("JOB_EGRESS_ALLOW").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { entry in
                guard let rule = EgressRule(entry) else {
                    throw ConfigurationError("JOB_EGRESS_ALLOW", "'\(entry)' is not host, *.domain or host:port")
                }
                return rule
            }
        dashboardToken = r.optional("DASHBOARD_TOKEN")
        spend = try SpendSettings(r)
        checkpoint = try CheckpointSettings(r)
    }

    /// DASHBOARD_TOKEN, checked: the dashboard exits 78 naming it when this throws.
    public func requiredDashboardToken() throws -> String {
        guard let token = dashboardToken else { throw ConfigurationError("DASHBOARD_TOKEN", "is required but not set") }
        guard token.count >= 16 else {
            throw ConfigurationError("DASHBOARD_TOKEN", "must be at least 16 characters (e.g. openssl rand -hex 32)")
        }
        guard !token.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ConfigurationError("DASHBOARD_TOKEN", "must not contain control characters")
        }
        return token
    }

    /// Parses JOB_UID_RANGE, `A-B` with 1000 <= A <= B < 2^31. Ranges holding
    /// 65534 (nobody) or 65535 (an invalid uid for 16-bit interfaces) are refused.
    public static func parseUIDRange(_ text: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let low = Int(parts[0]), let high = Int(parts[1]) else {
            throw ConfigurationError("JOB_UID_RANGE", "'\(text)' is not a range A-B of uids (for example 61000-61999)")
        }
        guard 1000 <= low, low <= high, high < 1 << 31 else {
            throw ConfigurationError("JOB_UID_RANGE", "'\(text)' must satisfy 1000 <= A <= B < 2147483648")
        }
        guard !(low...high).contains(65534), !(low...high).contains(65535) else {
            throw ConfigurationError("JOB_UID_RANGE", "'\(text)' must not include 65534 (nobody) or 65535")
        }
        return low...high
    }

    /// A conservative check for branch and remote names (git check-ref-format subset).
    public static func isSafeRefName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 200 && !s.hasPrefix("-") && !s.hasPrefix("/") && !s.hasSuffix("/")
            && !s.hasSuffix(".lock") && !s.contains("..") && !s.contains("//")
            && s.range(of: #"^[A-Za-z0-9._/-]+$"#, options: .regularExpression) != nil
    }

    /// Loads `path` (KEY=VALUE lines, `#` comments, optional quotes, optional
    /// `export `) and overlays the process environment on top of it.
    public static func environment(envFile path: String?, process: [String: String]) throws -> [String: String] {
        var merged: [String: String] = [:]
        if let path {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError("--env-file", "cannot read \(path)")
            }
            for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                var line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                if line.hasPrefix("export ") { line.removeFirst(7) }
                guard let eq = line.firstIndex(of: "=") else {
                    throw ConfigurationError("--env-file", "\(path):\(n + 1): expected KEY=VALUE")
                }
                let key = line[..<eq].trimmingCharacters(in: .whitespaces)
                var value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                if value.count >= 2, let f = value.first, f == "\"" || f == "'", value.last == f {
                    value = String(value.dropFirst().dropLast())
                }
                merged[key] = value
            }
        }
        merged.merge(process) { _, p in p }
        return merged
    }
}
