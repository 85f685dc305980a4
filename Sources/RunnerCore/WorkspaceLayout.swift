/// The layout of one job's workspace and the environment it gives the job's
/// processes: the one place that names `input/ repo/ home/ tmp/ run/` and
/// sets HOME and TMPDIR. The supervisor creates the workspace, `run/` and the
/// egress proxy's socket and starts the child with `environment`; the child
/// creates the rest (`childFolders`), writes `input/` and gives the agent the
/// same `environment` (docs/architecture.md, Workspace).
public struct WorkspaceLayout: Sendable, Equatable {
    /// The workspace's own folder.
    public let root: String
    public init(_ root: String) { self.root = root }
    /// The workspace of job `jobId` under WORKDIR_ROOT (see `WorkspaceName`).
    public init(workdirRoot: String, jobId: String) { self.init(workdirRoot + "/" + WorkspaceName.of(jobId)) }

    /// The spec, the diagram and instructions.md (written by the child).
    public var input: String { root + "/input" }
    /// The generated repository.
    public var repo: String { root + "/repo" }
    /// HOME of the child and the agent.
    public var home: String { root + "/home" }
    /// XDG_CONFIG_HOME of the child and the agent (libgit2 and tools look there).
    public var configHome: String { home + "/.config" }
    /// TMPDIR of the child and the agent.
    public var tmp: String { root + "/tmp" }
    /// Made by the supervisor; read-only for the job: holds the egress proxy's socket.
    public var run: String { root + "/run" }
    /// The egress proxy's Unix socket.
    public var egressSocket: String { run + "/egress.sock" }

    /// Names of the files in `input/`.
    public static let diagramFile = "architecture_spec.json", specFile = "spec.json", instructionsFile = "instructions.md"
    /// The diagram as drawn (the ticket's `architectureSpec`).
    public var diagram: String { input + "/" + Self.diagramFile }
    /// The normalised spec the generators read.
    public var spec: String { input + "/" + Self.specFile }
    /// The build instructions the generators read.
    public var instructions: String { input + "/" + Self.instructionsFile }

    /// The folders the job child creates (mode 0700): all but `run/`.
    public var childFolders: [String] { [root, input, repo, home, tmp] }
    /// The folders the job may write (Landlock read-write): the workspace's
    /// own folder and `run/` stay read-only.
    public var writable: [String] { [input, repo, home, tmp] }

    /// The whole environment the job child and its agent start from: nothing
    /// inherited, no secret; HOME, XDG_CONFIG_HOME and TMPDIR in the workspace.
    public var environment: [String: String] {
        ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "XDG_CONFIG_HOME": configHome, "TMPDIR": tmp]
    }
}
