import Foundation

/// The part of the runner's configuration a job child needs: validated with
/// the rest of it (it is `RunnerConfiguration.child`) and sent whole in every
/// ticket, so the supervisor and the child read the same value. No secret:
/// the keys and tokens stay in `RunnerConfiguration` (docs/contract.md,
/// Configuration and Protocol).
public struct ChildSettings: Sendable, Codable, Equatable {
    /// GENERATORS, in order.
    public var generators: [GeneratorName]
    /// CLINE_ENABLED.
    public var clineEnabled: Bool
    /// CLINE_CMD.
    public var clineCommand: String
    /// CLINE_ARGS, the argv template.
    public var clineArgs: String
    /// CLINE_TIMEOUT_SECONDS.
    public var clineTimeoutSeconds: Int
    /// CLINE_PROVIDER: the provider Cline is configured for (nil: none; the
    /// agent then runs with whatever an operator set up, usually nothing).
    public var clineProvider: ClineProvider?
    /// CLINE_MODEL: the model id written into Cline's configuration.
    public var clineModel: String?
    /// AIDER_* and MINI_SWE_AGENT_*: the other agent CLIs.
    public var agents: AgentSettings
    /// GEMINI_MODEL.
    public var geminiModel: String
    /// GEMINI_API_BASE.
    public var geminiAPIBase: String
    /// GEMINI_TIMEOUT_SECONDS.
    public var geminiTimeoutSeconds: Int
    /// GIT_AUTHOR_NAME.
    public var authorName: String
    /// GIT_AUTHOR_EMAIL.
    public var authorEmail: String
    /// CLONE_DEFAULT_BRANCH.
    public var branch: String
    /// CLONE_REMOTE_NAME.
    public var remoteName: String
    /// SANDBOX=enforce.
    public var sandboxEnforced: Bool
    /// SANDBOX_READ_PATHS.
    public var sandboxReadPaths: [String]
    /// Paths the child must never read: /etc/agent-runner and the runner's
    /// env file (follows `RunnerConfiguration.envFilePath`).
    public var sandboxHiddenPaths: [String]
    /// JOB_MEMORY_MB.
    public var memoryMB: Int
    /// JOB_CPU_SECONDS.
    public var cpuSeconds: Int
    /// JOB_MAX_FILE_MB.
    public var maxFileMB: Int
    /// JOB_MAX_FILES.
    public var maxFiles: Int
    /// JOB_MAX_TOTAL_MB.
    public var maxTotalMB: Int
    /// JOB_NETWORK.
    public var network: JobNetwork
    /// JOB_MAX_PROCESSES: the most processes (and threads) one job may have at once.
    public var maxProcesses: Int
    /// JOB_LOG_LINE_BYTES: the longest log line, in UTF-8 bytes.
    public var logLineBytes: Int
    /// JOB_LOG_BYTES: the most log bytes one attempt records.
    public var logBytes: Int
    /// JOB_EVENTS_MAX: the most events a job's stream keeps (`JobEvent`),
    /// the last of them a `truncated` marker.
    public var eventsMax: Int
    /// JOB_EVENTS_MAX's default.
    public static let defaultEventsMax = 10_000
    /// The hosts a push token may be offered to (GIT_TOKEN_HOSTS; for
    /// `github-app` the App's own host among them): the child asks for a
    /// token for no other remote, and its credential callback checks each
    /// server that asks.
    public var tokenHosts: [TokenHost]
    /// PUBLISH_MODE and the publishing settings (`PublishSettings`).
    public var publish: PublishSettings

    /// The log's byte bounds (JOB_LOG_LINE_BYTES, JOB_LOG_BYTES).
    public var logBounds: LogBounds { LogBounds(lineBytes: logLineBytes, jobBytes: logBytes) }

    /// The loopback port of the forwarder to the egress proxy inside every
    /// job's own network namespace (HTTPS_PROXY/HTTP_PROXY of the agent).
    public static let forwarderPort = 3128

    /// The hidden paths for a runner whose settings came from `envFile`.
    public static func hiddenPaths(envFile: String?) -> [String] {
        ["/etc/agent-runner"] + (envFile.map { [$0] } ?? [])
    }

    /// Reads and checks this part of the configuration.
    init(_ r: ConfigReader) throws {
        geminiModel = r.string("GEMINI_MODEL")
        geminiAPIBase = r.string("GEMINI_API_BASE")
        guard geminiAPIBase.hasPrefix("https://") || geminiAPIBase.hasPrefix("http://") else {
            throw ConfigurationError("GEMINI_API_BASE", "must be an http(s) URL")
        }
        geminiTimeoutSeconds = try r.int("GEMINI_TIMEOUT_SECONDS", 1...3600)
        authorName = r.string("GIT_AUTHOR_NAME")
        authorEmail = r.string("GIT_AUTHOR_EMAIL")
        guard authorEmail.contains("@") else { throw ConfigurationError("GIT_AUTHOR_EMAIL", "must be an e-mail address") }
        branch = r.string("CLONE_DEFAULT_BRANCH")
        guard RunnerConfiguration.isSafeRefName(branch) else {
            throw ConfigurationError("CLONE_DEFAULT_BRANCH", "'\(branch)' is not a valid branch name")
        }
        remoteName = r.string("CLONE_REMOTE_NAME")
        guard RunnerConfiguration.isSafeRefName(remoteName), !remoteName.contains("/") else {
            throw ConfigurationError("CLONE_REMOTE_NAME", "'\(remoteName)' is not a valid remote name")
        }
        clineEnabled = try r.bool("CLINE_ENABLED")
        clineCommand = r.string("CLINE_CMD")
        clineArgs = r.string("CLINE_ARGS")
        clineTimeoutSeconds = try r.int("CLINE_TIMEOUT_SECONDS", 1...86_400)
        generators = try GeneratorName.parseList(r.string("GENERATORS"))
        agents = try AgentSettings(r)
        memoryMB = try r.int("JOB_MEMORY_MB", 64...1_048_576)
        cpuSeconds = try r.int("JOB_CPU_SECONDS", 1...86_400)
        maxFileMB = try r.int("JOB_MAX_FILE_MB", 1...4096)
        maxFiles = try r.int("JOB_MAX_FILES", 1...1_000_000)
        maxTotalMB = try r.int("JOB_MAX_TOTAL_MB", 1...65_536)
        switch r.string("SANDBOX") {
        case "enforce": sandboxEnforced = true
        case "off": sandboxEnforced = false
        default: throw ConfigurationError("SANDBOX", "must be enforce or off")
        }
        sandboxReadPaths = r.string("SANDBOX_READ_PATHS").split(separator: ":").map(String.init)
        guard sandboxReadPaths.allSatisfy({ $0.hasPrefix("/") }) else {
            throw ConfigurationError("SANDBOX_READ_PATHS", "must be a ':'-separated list of absolute paths")
        }
        sandboxHiddenPaths = Self.hiddenPaths(envFile: nil)
        clineProvider = try r.optional("CLINE_PROVIDER").map(ClineProvider.parse)
        clineModel = r.optional("CLINE_MODEL")
        guard let network = JobNetwork(rawValue: r.string("JOB_NETWORK")) else {
            throw ConfigurationError("JOB_NETWORK", "must be proxy, none or host")
        }
        self.network = network
        maxProcesses = try r.int("JOB_MAX_PROCESSES", 8...65_536)
        logLineBytes = try r.int("JOB_LOG_LINE_BYTES", 256...32_768)
        logBytes = try r.int("JOB_LOG_BYTES", 65_536...LogBounds.maxStoredBytes)
        eventsMax = try r.int("JOB_EVENTS_MAX", 10...1_000_000)
        tokenHosts = []
        publish = try PublishSettings(r)
    }
}
