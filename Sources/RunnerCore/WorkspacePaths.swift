/// The layout of one job's workspace, shared by the supervisor (which
/// creates it and the egress proxy's socket) and the job child.
public struct WorkspacePaths: Sendable {
    public let root: String
    public init(_ root: String) { self.root = root }
    /// The spec, the diagram and instructions.md (written by the child).
    public var input: String { root + "/input" }
    /// The generated repository.
    public var repo: String { root + "/repo" }
    /// HOME of the child and the agent.
    public var home: String { root + "/home" }
    /// TMPDIR of the child and the agent.
    public var tmp: String { root + "/tmp" }
    /// Made by the supervisor; read-only for the job: holds the egress proxy's socket.
    public var run: String { root + "/run" }
    /// The egress proxy's Unix socket.
    public var egressSocket: String { run + "/egress.sock" }
}
