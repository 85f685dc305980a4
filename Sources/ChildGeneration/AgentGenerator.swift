import RunnerCore

/// A generator that runs an agent CLI in the job's sandbox (Cline, aider,
/// mini-swe-agent): the chain asks whether it can run here, logs why not and
/// moves on, or runs it and checks the tree it left.
public protocol AgentGenerator {
    /// The job's settings, workspace, route and log.
    var context: AgentContext { get }
    /// The executable as configured (for the log).
    var command: String { get }
    /// Why the agent cannot run here, or nil when it can.
    func unavailableReason() -> String?
    /// Runs the agent to its end; returns what it reported of its usage.
    func run() throws -> AgentUsage?
}

extension AgentGenerator {
    /// The job's settings.
    public var settings: ChildSettings { context.settings }
    var layout: WorkspaceLayout { context.layout }
    func log(_ line: String) { context.log(line) }
}

/// What an agent generator is given: the job's settings and workspace, the
/// provider route as the agent reaches it, the proxy variables, the log.
public struct AgentContext {
    public let settings: ChildSettings
    public let workspace: String
    /// The provider route as the agent reaches it (nil: the job has none).
    public let providerBaseURL: String?
    /// Added to the agent's environment (HTTPS_PROXY…); never a secret.
    public let extraEnvironment: [String: String]
    public let log: (String) -> Void
    /// Takes the agent's events for the job's stream (the child's `Emitter` redacts and bounds them).
    public let event: (JobEvent) -> Void

    public init(settings: ChildSettings, workspace: String, providerBaseURL: String?,
                extraEnvironment: [String: String] = [:], log: @escaping (String) -> Void,
                event: @escaping (JobEvent) -> Void = { _ in }) {
        self.settings = settings
        self.workspace = workspace
        self.providerBaseURL = providerBaseURL
        self.extraEnvironment = extraEnvironment
        self.log = log
        self.event = event
    }

    var layout: WorkspaceLayout { WorkspaceLayout(workspace) }
}
