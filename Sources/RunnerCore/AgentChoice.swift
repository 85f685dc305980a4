/// A job's own choice of agent: its `agent` field names one of
/// `AGENTS_ALLOWED`, which then runs first and alone among the agents; the
/// chain's other generators (gemini, scaffold) stay behind it as fallbacks.
/// The field is untrusted input: anything else fails `invalid_spec`, decided
/// before the job gets a workspace.
public enum AgentChoice {
    /// The job's chain: GENERATORS, or the job's agent and GENERATORS' non-agents.
    public static func chain(job: Job, settings: ChildSettings) throws -> [GeneratorName] {
        guard let value = DocumentFields.first(DocumentFields.agent, in: job.document) else { return settings.generators }
        let allowed = settings.agents.allowed
        let list = allowed.isEmpty ? "none: AGENTS_ALLOWED is empty" : "AGENTS_ALLOWED=" + allowed.map(\.rawValue).joined(separator: ",")
        guard let text = value.stringValue, let name = GeneratorName(rawValue: text), name.isAgent else {
            throw JobFailure(.invalidSpec, "the job's agent must be cline, aider or mini-swe-agent (allowed here: \(list))")
        }
        guard allowed.contains(name) else {
            throw JobFailure(.invalidSpec, "the job's agent \(name.rawValue) is not allowed here (\(list))")
        }
        return [name] + settings.generators.filter { !$0.isAgent }
    }
}
