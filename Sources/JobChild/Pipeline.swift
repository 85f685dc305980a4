#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ChildGeneration
import ChildPublishing
import RunnerCore
import Sandbox

/// One job, start to finish, inside the confined child.
struct Pipeline {
    let ticket: JobTicket
    let out: Emitter

    var workspace: WorkspaceLayout { WorkspaceLayout(ticket.workspace) }
    var repoDir: String { workspace.repo }

    /// Runs every stage; returns the metadata or throws a `JobFailure`.
    func run() throws -> JobMetadata {
        var clock = PhaseClock()
        func lap(_ name: String) { clock.lap(name) }
        /// A sub-phase's milliseconds (inside the current lap, which still counts it).
        func measure<T>(_ name: String, _ body: () throws -> T) rethrows -> T { try clock.measure(name, body) }
        out.stage(.preparing)
        // The one classification of the remote (the supervisor checked it against GIT_ALLOWED_SCHEMES and the roots).
        _ = try ticket.repoURL.map(RepositoryRemote.init)
        try prepareWorkspace()
        var network = NetworkSetup(settings: ticket.settings, workspace: ticket.workspace)
        try network.prepare()
        out.log(network.summary)
        // Confinement comes first, while this is the only thread: `apply()`
        // refuses to run otherwise (Landlock binds the calling thread and
        // what it starts later, not threads that already exist).
        let confined = try measure("confineMs") { try confinement().apply() }
        out.log(confined.summary)
        if ticket.settings.sandboxEnforced {
            AgentConfinement.layers = try AgentLayers.make(rules: agentRules(confined.rules),
                                                           mounts: confined.mountNamespace)
        }
        network.startForwarding()
        // A stop (budget, timeout, cancel) checkpoints the partial work from now on.
        let checkpoint = ticket.checkpoint.map { Checkpoint(ticket: ticket, plan: $0, out: out) }
        checkpoint?.arm()
        ChildInput.startWatching()
        checkpoint?.resume()
        let spec = try ArchitectureSpec(json: ticket.architectureSpec, fallbackName: ticket.projectName,
                                        fallbackPrompt: ticket.prompt)
        out.log("architecture '\(spec.name)': \(spec.components.count) components, \(spec.connections.count) connections")
        for note in spec.notes { out.log("catalogue: " + note) }
        try writeInputs(spec)
        lap("sandboxMs")

        out.stage(.generating)
        var chain = GeneratorChain(ticket: ticket, spec: spec, workspace: workspace, log: out.log)
        chain.event = out.event
        // Cline calls its provider through the proxy's route, which holds the real key.
        if let route = network.providerRoute { chain.providerBaseURL = route }
        let generated = try chain.run()
        // A stop's checkpoint may hold the tree now: this thread then parks until the child exits.
        StopGate.passGeneration()

        // Nothing the agent started may outlive its phase: everything left is
        // killed before the tree is checked and before any credential arrives.
        let leftovers = AgentReaper.killAll()
        if leftovers > 0 { out.log("ended \(leftovers) process(es) the agent left running") }
        if let failure = pidsLimitFailure() { throw failure }
        lap("generateMs")
        out.stage(.validating)
        let summary: TreeSummary
        do {
            summary = try TreeScanner.scan(repoDir, limits: TreeLimits(ticket.settings))
        } catch let f as JobFailure {
            out.event(.validation(finding: f.code.rawValue, ok: false, detail: f.message))
            throw f
        }
        guard summary.files.contains("README.md") else {
            out.event(.validation(finding: "missing_readme", ok: false, files: summary.files.count, bytes: summary.bytes))
            throw JobFailure(.validationFailed, "the generated tree has no README.md at its root")
        }
        guard summary.files.count >= 2 else {
            out.event(.validation(finding: "too_few_files", ok: false, files: summary.files.count, bytes: summary.bytes))
            throw JobFailure(.validationFailed, "the generated tree has only README.md; at least one other file is required")
        }
        out.log("validated \(summary.files.count) files, \(summary.bytes) bytes")
        out.event(.validation(finding: "tree", ok: true, files: summary.files.count, bytes: summary.bytes))
        lap("validateMs")

        guard !ParentWatch.orphaned else {
            throw JobFailure(.leaseLost, "the supervisor died; stopping before publishing")
        }
        let step = PublishStep(ticket: ticket, spec: spec, generated: generated, tree: summary, network: network,
                               workspace: workspace, out: out)
        var meta = try step.run(measure: measure).metadata
        for (k, v) in meta.timings ?? [:] { clock.record(k, v) }
        meta.generator = generated.generator.rawValue
        meta.agent = generated.agent
        meta.files = meta.files ?? summary.files.count
        meta.bytes = summary.bytes
        lap("publishMs")
        meta.timings = clock.timings
        return meta
    }

    func prepareWorkspace() throws {
        for dir in workspace.childFolders {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw Errno(errno, "mkdir \(dir)") }
        }
        // libgit2 and every tool the child runs look for their config and
        // temporary files here, inside the workspace, not in the host's HOME
        // (whoever started this child: the supervisor already set the same).
        for (name, value) in workspace.environment where name != "PATH" && name != "LANG" { setenv(name, value, 1) }
    }

    /// `resource_limit` when the job's pids cgroup refused a fork (JOB_MAX_PROCESSES).
    func pidsLimitFailure() -> JobFailure? {
        guard let path = ticket.pidsEventsPath else { return nil }
        let count = PidsEvents.refusedForks(atPath: path)
        guard count > 0 else { return nil }
        return JobFailure(.resourceLimit, "process limit JOB_MAX_PROCESSES=\(ticket.settings.maxProcesses) reached: "
            + "the agent tried to start more processes \(count) time(s)")
    }

    /// The Landlock rules and limits for this job.
    func confinement() -> Confinement {
        let s = ticket.settings
        // The workspace's own folder and run/ (the proxy's socket) stay read-only.
        var readWrite = workspace.writable
        if let path = ticket.repoURL.flatMap({ try? RepositoryRemote($0) })?.localPath { readWrite.append(path) }
        var readExecute = Confinement.systemPaths + s.sandboxReadPaths
        // Each agent in the chain: its folder, or its whole virtualenv (AgentInstall).
        for name in s.generators where name.isAgent && (name != .cline || s.clineEnabled) {
            if let command = s.agents.command(for: name, cline: s.clineCommand) {
                readExecute += AgentInstall.readablePaths(command)
            }
        }
        let ports: [UInt16]? = switch s.network {
        case .proxy: [UInt16(ChildSettings.forwarderPort), UInt16(NetworkSetup.tunnelPort)]
        case .none: []
        case .host: nil
        }
        var c = Confinement(rules: .init(readWrite: readWrite, readExecute: readExecute + [workspace.run],
                                         devices: Confinement.devicePaths, hidden: s.sandboxHiddenPaths,
                                         connectPorts: ports),
                            memoryMB: s.memoryMB, cpuSeconds: s.cpuSeconds,
                            maxWriteMB: s.maxTotalMB + 64, enforced: s.sandboxEnforced)
        c.isolatedNetwork = s.network != .host
        if ticket.pidsEventsPath == nil { c.maxProcesses = s.maxProcesses }
        // Its own mount namespace (enforced jobs always have their user and PID
        // namespaces), the workspace kept.
        c.mountNamespace = true
        c.keepPaths = [workspace.root]
        return c
    }

    /// The agent's narrower layer on top of the job's `rules`: it writes only
    /// repo/, home/ and tmp/ (input/ it reads); the local git remote, which
    /// only the publisher writes after the agent phase, and run/ (the egress
    /// proxy's socket, the forwarder's business) are left out; TCP only to
    /// the forwarder.
    func agentRules(_ rules: Landlock.Rules) -> Landlock.Rules {
        var agent = rules
        agent.readWrite = [workspace.repo, workspace.home, workspace.tmp]
        agent.readExecute = rules.readExecute.filter { $0 != workspace.run } + [workspace.input]
        agent.connectPorts = rules.connectPorts.map { $0.filter { $0 == UInt16(ChildSettings.forwarderPort) } }
        return agent
    }

    func writeInputs(_ spec: ArchitectureSpec) throws {
        let limits = TreeLimits(maxFiles: 3, maxFileBytes: 64 << 20, maxTotalBytes: 192 << 20)
        try TreeWriter(root: workspace.input, limits: limits).write([
            (WorkspaceLayout.diagramFile, Array((ticket.architectureSpec.prettyString + "\n").utf8)),
            (WorkspaceLayout.specFile, Array((spec.normalizedJSON.prettyString + "\n").utf8)),
            (WorkspaceLayout.instructionsFile, Array(Instructions.markdown(for: spec).utf8)),
        ])
    }
}
