/// `agent-runner-job --probe`: the checks of `agent-runner doctor` that need
/// the generation and publishing libraries (libcurl, libgit2). They run in the
/// job child's binary so that the supervisor links neither. The request
/// arrives as one JSON document on stdin; it never holds the Gemini key: the
/// online Gemini check goes through an egress proxy that the doctor starts
/// with the key (`geminiRoute`). The report is one JSON line on stdout.
public struct ToolProbeRequest: Sendable, Codable {
    /// Generator settings from the runner's configuration.
    public var settings: ChildSettings
    /// The cline command to resolve, or nil when cline is not configured.
    public var clineCommand: String?
    /// The egress proxy's Gemini route (which adds the key); with `online`,
    /// one GET of the model through it checks the key.
    public var geminiRoute: GeminiRoute?
    /// Make the one network call (`doctor --online`).
    public var online: Bool

    public init(settings: ChildSettings, clineCommand: String?, geminiRoute: GeminiRoute?, online: Bool) {
        self.settings = settings
        self.clineCommand = clineCommand
        self.geminiRoute = geminiRoute
        self.online = online
    }
}

/// What the probe found.
public struct ToolProbeReport: Sendable, Codable, Equatable {
    /// "1.5.1 (https, ssh, threads)".
    public var libgit2: String
    /// The resolved cline executable, or nil when not found (or not asked).
    public var clinePath: String?
    /// With `online` and a route: nil when the model answered, else why not.
    public var geminiProblem: String?
    /// Whether the Gemini call was made.
    public var geminiChecked: Bool
    /// The agent CLIs besides Cline in `GENERATORS` (aider, mini-swe-agent), as found.
    public var agents: [ProbedAgent]?

    /// One agent CLI as the probe found it.
    public struct ProbedAgent: Sendable, Codable, Equatable {
        public var name: GeneratorName
        /// The command as configured (AIDER_CMD, MINI_SWE_AGENT_CMD).
        public var command: String
        /// The resolved executable, or nil when not found.
        public var path: String?
        /// The installed package's version (a virtualenv's `.dist-info`), when known.
        public var version: String?
        /// The folder of the Python its virtualenv was made from.
        public var interpreterHome: String?

        public init(name: GeneratorName, command: String, path: String?, version: String?, interpreterHome: String?) {
            self.name = name
            self.command = command
            self.path = path
            self.version = version
            self.interpreterHome = interpreterHome
        }
    }

    public init(libgit2: String, clinePath: String?, geminiProblem: String?, geminiChecked: Bool) {
        self.libgit2 = libgit2
        self.clinePath = clinePath
        self.geminiProblem = geminiProblem
        self.geminiChecked = geminiChecked
    }
}
