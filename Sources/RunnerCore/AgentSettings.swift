/// The settings of the agent CLIs beside Cline (aider, mini-swe-agent): where
/// each is installed and which model it asks for. They share Cline's provider
/// route, placeholder key and run timeout (`CLINE_PROVIDER`, `CLINE_API_KEY`,
/// `CLINE_TIMEOUT_SECONDS`); `CLINE_MODEL` is their model unless overridden.
public struct AgentSettings: Sendable, Codable, Equatable {
    /// AIDER_CMD: aider's executable (a name on PATH or an absolute path).
    public var aiderCommand: String
    /// AIDER_MODEL: aider's model id (nil: CLINE_MODEL).
    public var aiderModel: String?
    /// MINI_SWE_AGENT_CMD: mini-swe-agent's `mini` executable.
    public var miniSWEAgentCommand: String
    /// MINI_SWE_AGENT_MODEL: mini-swe-agent's model id (nil: CLINE_MODEL).
    public var miniSWEAgentModel: String?
    /// MINI_SWE_AGENT_STEP_LIMIT: the most model calls one run makes.
    public var miniSWEAgentStepLimit: Int
    /// AGENTS_ALLOWED: the agents a job may name in its `agent` field (empty: none).
    public var allowed: [GeneratorName]

    /// Reads and checks the AIDER_* and MINI_SWE_AGENT_* variables.
    init(_ r: ConfigReader) throws {
        aiderCommand = r.string("AIDER_CMD")
        aiderModel = r.optional("AIDER_MODEL")
        miniSWEAgentCommand = r.string("MINI_SWE_AGENT_CMD")
        miniSWEAgentModel = r.optional("MINI_SWE_AGENT_MODEL")
        miniSWEAgentStepLimit = try r.int("MINI_SWE_AGENT_STEP_LIMIT", 1...10_000)
        allowed = []
        for word in r.string("AGENTS_ALLOWED").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
        where !word.isEmpty {
            guard let name = GeneratorName(rawValue: word), name.isAgent else {
                throw ConfigurationError("AGENTS_ALLOWED", "'\(word)' is not an agent: a comma-separated list of cline, aider, mini-swe-agent")
            }
            if !allowed.contains(name) { allowed.append(name) }
        }
        for (name, value) in [("AIDER_CMD", aiderCommand), ("MINI_SWE_AGENT_CMD", miniSWEAgentCommand)] {
            guard !value.isEmpty, !value.contains(where: \.isWhitespace) else {
                throw ConfigurationError(name, "must be an executable's name or absolute path, without spaces")
            }
        }
    }

    /// The executable configured for agent `name` (nil for a generator that is no agent CLI).
    public func command(for name: GeneratorName, cline: String) -> String? {
        switch name {
        case .cline: cline
        case .aider: aiderCommand
        case .miniSWEAgent: miniSWEAgentCommand
        case .gemini, .scaffold: nil
        }
    }
}
