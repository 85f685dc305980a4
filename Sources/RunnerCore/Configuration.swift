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
    public var geminiModel: String
    public var geminiAPIBase: String
    public var geminiTimeoutSeconds: Int
    public var githubToken: String?
    /// Where http(s) push tokens come from (GIT_TOKEN_SOURCE and its settings).
    public var gitToken: GitTokenSettings
    public var pollSeconds: Double
    public var workdirRoot: String
    public var gitAuthorName: String
    public var gitAuthorEmail: String
    public var defaultBranch: String
    public var remoteName: String
    public var clineEnabled: Bool
    public var clineCommand: String
    public var clineArgs: String
    public var clineTimeoutSeconds: Int
    public var concurrency: Int
    public var leaseSeconds: Int
    public var jobTimeoutSeconds: Int
    public var maxAttempts: Int
    public var shutdownGraceSeconds: Int
    public var keepWorkspaces: KeepWorkspaces
    public var generators: [String]
    public var jobMemoryMB: Int
    public var jobCPUSeconds: Int
    public var jobMaxFileMB: Int
    public var jobMaxFiles: Int
    public var jobMaxTotalMB: Int
    public var sandboxEnforced: Bool
    public var sandboxReadPaths: [String]
    /// The absolute path of the `.env` file the settings came from, if any
    /// (hidden from job children).
    public var envFilePath: String?
    public var metricsAddress: String?
    public var logFormat: String
    public var logLevel: String
    public var jobExecutablePath: String?
    public var logCap: Int
    /// JOB_UID_RANGE: when set (and the supervisor runs as root), each job
    /// child runs as its own uid = gid from this range; nil: children share
    /// the supervisor's uid.
    public var jobUIDRange: ClosedRange<Int>?
    /// CLINE_PROVIDER: the model provider Cline calls through the egress proxy (nil: none configured).
    public var clineProvider: ClineProvider?
    /// CLINE_MODEL: the model id Cline asks the provider for.
    public var clineModel: String?
    /// CLINE_API_KEY: the provider key. Held by the supervisor and the job's
    /// egress proxy only; never in a ticket, the agent's reach, argv or a log.
    public var clineAPIKey: String?
    /// JOB_NETWORK: how a job child reaches the network.
    public var jobNetwork: JobNetwork
    /// JOB_EGRESS_ALLOW: extra egress rules, added to those derived from the configuration.
    public var egressAllow: [EgressRule]
    /// JOB_MAX_PROCESSES: the most processes (and threads) one job may have at once.
    public var jobMaxProcesses: Int
    /// DASHBOARD_TOKEN: the operators' sign-in secret for `agent-runner dashboard`
    /// (required there only; at least 16 characters).
    public var dashboardToken: String?

    /// The recognised generator names.
    public static let knownGenerators = ["cline", "gemini", "scaffold"]

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
        ("JOB_NETWORK", "proxy"), ("JOB_EGRESS_ALLOW", ""), ("JOB_MAX_PROCESSES", "256"),
        ("DASHBOARD_TOKEN", ""), ("GIT_TOKEN_SOURCE", "env"), ("GIT_TOKEN_USER_COLLECTION", "users"),
        ("GIT_TOKEN_USER_FIELD", "github_access_token"), ("GITHUB_APP_ID", ""), ("GITHUB_APP_PRIVATE_KEY_FILE", ""),
        ("GITHUB_API_URL", "https://api.github.com"),
    ]

    /// Validates `environment` (with `.env` values underneath it).
    public init(environment: [String: String]) throws {
        let r = Reader(environment)
        mongoURI = try r.required("MONGODB_URI")
        guard mongoURI.hasPrefix("mongodb://") || mongoURI.hasPrefix("mongodb+srv://") else {
            throw ConfigurationError("MONGODB_URI", "must start with mongodb:// or mongodb+srv://")
        }
        databaseName = r.string("MONGO_DB_NAME")
        guard !databaseName.isEmpty, databaseName.range(of: #"^[A-Za-z0-9_-]{1,63}$"#, options: .regularExpression) != nil
        else { throw ConfigurationError("MONGO_DB_NAME", "must be 1-63 letters, digits, '_' or '-'") }
        geminiAPIKey = r.optional("GOOGLE_GEMINI_API_KEY")
        geminiModel = r.string("GEMINI_MODEL")
        geminiAPIBase = r.string("GEMINI_API_BASE")
        guard geminiAPIBase.hasPrefix("https://") || geminiAPIBase.hasPrefix("http://") else {
            throw ConfigurationError("GEMINI_API_BASE", "must be an http(s) URL")
        }
        geminiTimeoutSeconds = try r.int("GEMINI_TIMEOUT_SECONDS", 1...3600)
        githubToken = r.optional("GITHUB_TOKEN")
        gitToken = try GitTokenSettings(source: r.string("GIT_TOKEN_SOURCE"), userCollection: r.string("GIT_TOKEN_USER_COLLECTION"),
                                        userField: r.string("GIT_TOKEN_USER_FIELD"), appId: r.optional("GITHUB_APP_ID"),
                                        appPrivateKeyFile: r.optional("GITHUB_APP_PRIVATE_KEY_FILE"),
                                        apiURL: r.string("GITHUB_API_URL"))
        pollSeconds = try r.double("RUNNER_POLL_SECONDS", 0.05...3600)
        workdirRoot = r.string("WORKDIR_ROOT")
        guard workdirRoot.hasPrefix("/") else { throw ConfigurationError("WORKDIR_ROOT", "must be an absolute path") }
        gitAuthorName = r.string("GIT_AUTHOR_NAME")
        gitAuthorEmail = r.string("GIT_AUTHOR_EMAIL")
        guard gitAuthorEmail.contains("@") else { throw ConfigurationError("GIT_AUTHOR_EMAIL", "must be an e-mail address") }
        defaultBranch = r.string("CLONE_DEFAULT_BRANCH")
        guard Self.isSafeRefName(defaultBranch) else {
            throw ConfigurationError("CLONE_DEFAULT_BRANCH", "'\(defaultBranch)' is not a valid branch name")
        }
        remoteName = r.string("CLONE_REMOTE_NAME")
        guard Self.isSafeRefName(remoteName), !remoteName.contains("/") else {
            throw ConfigurationError("CLONE_REMOTE_NAME", "'\(remoteName)' is not a valid remote name")
        }
        clineEnabled = try r.bool("CLINE_ENABLED")
        clineCommand = r.string("CLINE_CMD")
        clineArgs = r.string("CLINE_ARGS")
        clineTimeoutSeconds = try r.int("CLINE_TIMEOUT_SECONDS", 1...86_400)
        concurrency = try r.int("RUNNER_CONCURRENCY", 1...256)
        leaseSeconds = try r.int("LEASE_SECONDS", 3...3600)
        jobTimeoutSeconds = try r.int("JOB_TIMEOUT_SECONDS", 1...86_400)
        maxAttempts = try r.int("JOB_MAX_ATTEMPTS", 1...100)
        shutdownGraceSeconds = try r.int("SHUTDOWN_GRACE_SECONDS", 0...3600)
        guard let keep = KeepWorkspaces(rawValue: r.string("KEEP_WORKSPACES")) else {
            throw ConfigurationError("KEEP_WORKSPACES", "must be always, failed or never")
        }
        keepWorkspaces = keep
        generators = r.string("GENERATORS").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !generators.isEmpty, generators.allSatisfy(Self.knownGenerators.contains) else {
            throw ConfigurationError("GENERATORS", "must be a comma-separated list of \(Self.knownGenerators.joined(separator: ", "))")
        }
        jobMemoryMB = try r.int("JOB_MEMORY_MB", 64...1_048_576)
        jobCPUSeconds = try r.int("JOB_CPU_SECONDS", 1...86_400)
        jobMaxFileMB = try r.int("JOB_MAX_FILE_MB", 1...4096)
        jobMaxFiles = try r.int("JOB_MAX_FILES", 1...1_000_000)
        jobMaxTotalMB = try r.int("JOB_MAX_TOTAL_MB", 1...65_536)
        switch r.string("SANDBOX") {
        case "enforce": sandboxEnforced = true
        case "off": sandboxEnforced = false
        default: throw ConfigurationError("SANDBOX", "must be enforce or off")
        }
        sandboxReadPaths = r.string("SANDBOX_READ_PATHS").split(separator: ":").map(String.init)
        guard sandboxReadPaths.allSatisfy({ $0.hasPrefix("/") }) else {
            throw ConfigurationError("SANDBOX_READ_PATHS", "must be a ':'-separated list of absolute paths")
        }
        metricsAddress = r.optional("METRICS_ADDR")
        logFormat = r.string("LOG_FORMAT")
        guard ["json", "text"].contains(logFormat) else { throw ConfigurationError("LOG_FORMAT", "must be json or text") }
        logLevel = r.string("LOG_LEVEL")
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw ConfigurationError("LOG_LEVEL", "must be trace, debug, info, notice, warning, error or critical")
        }
        jobExecutablePath = r.optional("AGENT_RUNNER_JOB_PATH")
        logCap = try r.int("JOB_LOG_CAP", 10...1_000_000)
        jobUIDRange = try r.optional("JOB_UID_RANGE").map(Self.parseUIDRange)
        clineProvider = try r.optional("CLINE_PROVIDER").map(ClineProvider.parse)
        clineModel = r.optional("CLINE_MODEL")
        clineAPIKey = r.optional("CLINE_API_KEY")
        guard let network = JobNetwork(rawValue: r.string("JOB_NETWORK")) else {
            throw ConfigurationError("JOB_NETWORK", "must be proxy, none or host")
        }
        jobNetwork = network
        egressAllow = try r.string("JOB_EGRESS_ALLOW").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { entry in
                guard let rule = EgressRule(entry) else {
                    throw ConfigurationError("JOB_EGRESS_ALLOW", "'\(entry)' is not host, *.domain or host:port")
                }
                return rule
            }
        jobMaxProcesses = try r.int("JOB_MAX_PROCESSES", 8...65_536)
        dashboardToken = r.optional("DASHBOARD_TOKEN")
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

    private struct Reader {
        let env: [String: String]
        let defaults: [String: String]
        init(_ env: [String: String]) {
            self.env = env
            defaults = Dictionary(RunnerConfiguration.defaults.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        }
        func string(_ k: String) -> String {
            if let v = env[k], !v.isEmpty { return v }
            return defaults[k] ?? ""
        }
        func optional(_ k: String) -> String? { let v = string(k); return v.isEmpty ? nil : v }
        func required(_ k: String) throws -> String {
            guard let v = optional(k) else { throw ConfigurationError(k, "is required but not set") }
            return v
        }
        func int(_ k: String, _ range: ClosedRange<Int>) throws -> Int {
            let s = string(k)
            guard let v = Int(s), range.contains(v) else {
                throw ConfigurationError(k, "'\(s)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func double(_ k: String, _ range: ClosedRange<Double>) throws -> Double {
            let s = string(k)
            guard let v = Double(s), range.contains(v) else {
                throw ConfigurationError(k, "'\(s)' is not a number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func bool(_ k: String) throws -> Bool {
            switch string(k).lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw ConfigurationError(k, "'\(string(k))' is not a boolean (true or false)")
            }
        }
    }
}
