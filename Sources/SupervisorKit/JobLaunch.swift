#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import Logging
import RunnerCore

/// Everything around one job child's start: its workspace, its pids cgroup,
/// its egress proxy, and the child itself in its own user, PID and network
/// namespaces. All of it blocks (mkdir, fork/exec), so it runs on a thread
/// of its own.
public struct JobLaunch: Sendable {
    let config: RunnerConfiguration
    let childPath: String

    /// Whether the child gets namespaces of its own.
    var wantsNamespaces: Bool { config.child.sandboxEnforced || config.child.network != .host }

    /// Clears and creates the workspace (owned by the job's uid under
    /// JOB_UID_RANGE) and its read-only `run/` folder for the proxy socket.
    func prepareWorkspace(_ job: ClaimedJob, _ workspace: String) throws -> ChildIdentity? {
        try? FileManager.default.removeItem(atPath: workspace)
        try FileManager.default.createDirectory(atPath: config.workdirRoot, withIntermediateDirectories: true)
        let identity = try config.jobUIDRange.map {
            try ChildIdentity.claim(range: $0, jobId: job.idText, workspace: workspace)
        }
        if identity == nil, mkdir(workspace, 0o700) != 0 { throw Errno(errno, "mkdir \(workspace)") }
        let run = WorkspaceLayout(workspace).run
        if mkdir(run, 0o755) != 0 { identity?.release(); throw Errno(errno, "mkdir \(run)") }
        return identity
    }

    /// Whether a job may need to reach beyond its own namespace (its chain is
    /// `generators`: GENERATORS, or the job's own agent): Cline in the
    /// chain and enabled, aider or mini-swe-agent in the chain, Gemini in the chain with a key, or an http(s)
    /// remote to push to. A job that needs none (the scaffold generator and a
    /// local remote, or none) gets no egress proxy under JOB_NETWORK=proxy:
    /// it runs as with JOB_NETWORK=none, in its own network namespace with
    /// loopback only and no TCP connect at all (docs/contract.md).
    func needsEgress(repoURL: String?, generators: [GeneratorName]) -> Bool {
        if generators.contains(.cline), config.child.clineEnabled { return true }
        if generators.contains(where: { $0 == .aider || $0 == .miniSWEAgent }) { return true }
        if generators.contains(.gemini), config.geminiAPIKey != nil { return true }
        guard let url = repoURL else { return false }
        return (try? RepositoryRemote(url))?.http != nil
    }

    /// The log line of a JOB_NETWORK=proxy job that needs no egress.
    static let noEgressNote = "network: this job needs no egress (no network generator runs and its remote is "
        + "local): no egress proxy; own namespace, loopback only, as with JOB_NETWORK=none"

    /// Whether the job's Gemini generator gets the egress proxy's Gemini
    /// route: Gemini in the chain, a key, and a network (not JOB_NETWORK=none).
    /// The key stays with the proxy; the child gets the route's token.
    func wantsGeminiRoute(network: JobNetwork) -> Bool {
        config.child.generators.contains(.gemini) && config.geminiAPIKey != nil && network != .none
    }

    /// The egress proxy's ticket: the git remote's rule (and, for a
    /// `pull-request` job, GITHUB_API_URL's, derived the same way) plus
    /// JOB_EGRESS_ALLOW, the provider, and the Gemini route when
    /// `geminiRouteToken` is set. No
    /// rule opens the Cline provider or the Gemini API to CONNECT: the proxy
    /// calls them itself, on its keyed routes. `budget`: the job's (`SpendSettings.budget(for:)`),
    /// else the operator's; the prices are always the operator's.
    func proxyTicket(workspace: String, repoURL: String?, geminiRouteToken: String? = nil,
                     publish: PublishPlan? = nil, budget: JobBudget? = nil, sharedSpend: Bool = false) -> EgressProxyTicket {
        var derived = EgressRule.derived(gitRemote: repoURL)
        if publish?.mode == .pullRequest, repoURL.flatMap({ try? RepositoryRemote($0) })?.http != nil {
            derived += EgressRule.derived(gitRemote: config.child.publish.apiURL).filter { !derived.contains($0) }
        }
        let route = geminiRouteToken.flatMap { token in
            config.geminiAPIKey.map { GeminiUpstream(apiBase: config.child.geminiAPIBase, apiKey: $0, routeToken: token) }
        }
        var ticket = EgressProxyTicket(socketPath: WorkspaceLayout(workspace).egressSocket, rules: derived + config.egressAllow,
                                       provider: config.child.clineProvider, providerKey: config.clineAPIKey,
                                       providerHeaders: config.clineProviderHeaders, gemini: route,
                                       budget: budget ?? config.spend.budget, prices: config.spend.prices,
                                       retry: config.spend.retry)
        if sharedSpend { ticket.dailyBudgetUSD = [config.spend.daily.userUSD, config.spend.daily.projectUSD].compactMap { $0 }.min() }
        return ticket
    }

    /// Spawns the job child. In namespaces when wanted; where the host
    /// cannot create them, the job fails naming the cause and the fix
    /// (SANDBOX=off alone falls back to none, loudly).
    func spawnChild(ticket: [UInt8], workspace: String, identity: ChildIdentity?, cgroup: JobCgroup?,
                    warn: (String) -> Void) throws -> ChildProcess {
        // A range uid that cannot reach the binary (a build under a 0700 home)
        // would fail the exec, which reads as a namespace failure: say so first.
        if let identity, let failure = ExecuteAccess.failure(childPath: childPath, uid: identity.uid) { throw failure }
        let env = WorkspaceLayout(workspace).environment
        let uid = identity?.uid ?? Int32(bitPattern: geteuid()), gid = identity?.uid ?? Int32(bitPattern: getegid())
        func spawn(_ ns: Namespaces?) throws -> ChildProcess {
            try ChildProcess(executable: childPath, arguments: [], environment: env, stdin: ticket,
                             uid: ns == nil ? identity?.uid : nil, gid: ns == nil ? identity?.uid : nil,
                             namespaces: ns, cgroupProcs: cgroup?.procs, keepInputOpen: true)
        }
        guard wantsNamespaces else { return try spawn(nil) }
        do {
            return try spawn(Namespaces(network: config.child.network != .host, uid: uid, gid: gid))
        } catch let e as Errno {
            let why = Self.namespaceAdvice(e)
            guard !config.child.sandboxEnforced else { throw JobFailure(.sandboxUnavailable, why) }
            warn("WARNING: SANDBOX=off and " + why + "; running this job without namespaces")
            return try spawn(nil)
        }
    }

    /// What failed, and how to fix it, when the namespaces cannot be made.
    public static func namespaceAdvice(_ e: Errno) -> String {
        "cannot create the job's user, PID and network namespaces (\(e)); the agent never runs with the host's "
            + "network or outside a PID namespace. Fix: allow user namespaces for agent-runner: systemd "
            + "RestrictNamespaces=user pid net (see Deploy/agent-runner.service); sysctl user.max_user_namespaces > 0 "
            + "(and kernel.unprivileged_userns_clone=1 where it exists); on Ubuntu, "
            + "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile that allows `userns`. "
            + "`agent-runner doctor` checks this."
    }
}

/// One job's egress proxy process (`agent-runner-job --egress-proxy`), in a
/// pids cgroup of its own where cgroups are available (`maxTasks`; not the
/// job's, whose members must be the child alone when the push token is
/// handed over), and under its own memory limit (`ProxyMain.dataLimit`).
final class EgressProxyProcess: Sendable {
    let process: ChildProcess
    /// The proxy's own pids cgroup, removed when it stops.
    let cgroup: JobCgroup?

    /// The proxy's `pids.max`: its 64 connection threads, one resolver
    /// thread per keyed request in flight (at most 8), and its runtime's own.
    static let maxTasks = 160
    private let logger: Logger
    private let redactor: Locked<Redactor>

    /// The proxy's executable: always the agent-runner-job installed beside
    /// this binary, never AGENT_RUNNER_JOB_PATH (which chooses the job child
    /// only): the proxy holds the provider keys, so it is the one binary that
    /// ships with the supervisor, whatever job child is configured. Missing:
    /// `sandbox_unavailable` saying so (an operator must install it).
    static func executable(beside sibling: String? = ChildLocator.besideThisBinary) throws -> String {
        guard let sibling else {
            throw JobFailure(.sandboxUnavailable, "the job's egress proxy is agent-runner-job beside agent-runner ("
                + ChildLocator.siblingPath + "), which is missing or not executable: install both binaries in one "
                + "directory (AGENT_RUNNER_JOB_PATH chooses the job child only, never the proxy)")
        }
        return sibling
    }

    /// Starts the proxy and waits (up to 10 s) until it listens. With
    /// `cgroupName`, in a pids cgroup of that name when one can be made. Its
    /// stderr goes to `logger` through `redactor`, from the start to its end.
    /// `executable`: the proxy binary (tests), else the one beside this binary.
    static func start(ticket: EgressProxyTicket, cgroupName: String? = nil, logger: Logger, redactor: Locked<Redactor>,
                      executable path: String? = nil) async throws -> EgressProxyProcess {
        let line = Array(try JSONEncoder().encode(ticket)) + [0x0A]
        // The sibling's lookup (access(2)), the cgroupfs writes and the spawn run off the cooperative pool.
        let (process, cgroup) = try await onDedicatedThread {
            let cgroup = cgroupName.flatMap { JobCgroup.create(name: $0, maxProcesses: maxTasks) }
            do {
                return (try ChildProcess(executable: try path ?? executable(), arguments: ["--egress-proxy"],
                                         environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"], stdin: line,
                                         cgroupProcs: cgroup?.procs, keepInputOpen: true), cgroup)
            } catch {
                cgroup?.remove()
                throw error
            }
        }
        let proxy = EgressProxyProcess(process: process, cgroup: cgroup, logger: logger, redactor: redactor)
        let ready = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await out in process.output {
                    if case .stdout(let text) = out, EgressEvent.decode(line: text)?.kind == .ready { return true }
                    if case .stderr(let text) = out { proxy.diagnostic(text) }
                }
                return false
            }
            group.addTask { try? await Task.sleep(for: .seconds(10)); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard ready else {
            proxy.stop()
            throw JobFailure(.internal, "the job's egress proxy did not start")
        }
        return proxy
    }

    private init(process: ChildProcess, cgroup: JobCgroup?, logger: Logger, redactor: Locked<Redactor>) {
        self.process = process
        self.cgroup = cgroup
        self.logger = logger
        self.redactor = redactor
    }

    /// One line the proxy wrote on stderr (a diagnostic: a start-up failure,
    /// a crash), logged redacted with the job's secrets.
    func diagnostic(_ text: String) {
        logger.warning("egress proxy: \(redactor.withLock { $0 }.redact(text))")
    }

    /// Relays the proxy's output until it ends: each event (a stdout line)
    /// to `onEvent`, each diagnostic (a stderr line) to the log.
    func relay(_ onEvent: @Sendable (EgressEvent) async -> Void) async {
        for await line in process.output {
            switch line {
            case .stderr(let text): diagnostic(text)
            case .stdout(let text):
                guard let event = EgressEvent.decode(line: text) else { continue }
                await onEvent(event)
            }
        }
    }

    /// Answers its `usage` events when daily budgets apply (a line on its stdin).
    func answer(_ answer: SharedSpendAnswer) async {
        guard let line = try? JSONEncoder().encode(answer) else { return }
        try? await process.send(Array(line) + [0x0A])
    }

    /// Ends the proxy (it exits on EOF; SIGKILL makes sure) and removes its
    /// cgroup (on a thread of its own: the removal waits for the exit).
    func stop() {
        process.closeInput()
        process.signalGroup(SIGKILL)
        if let cgroup { Thread.detachNewThread { cgroup.remove() } }
    }
}

/// Finds the job child executable: AGENT_RUNNER_JOB_PATH, else beside this binary.
public enum ChildLocator {
    /// The configured job child, or the one beside this binary; nil when not executable.
    public static func path(_ config: RunnerConfiguration) -> String? {
        if let p = config.jobExecutablePath { return access(p, X_OK) == 0 ? p : nil }
        return besideThisBinary
    }

    /// agent-runner-job in the directory of this process's executable, if
    /// executable now (checked at each use: a binary missing for a moment, as
    /// during an upgrade, is not remembered).
    public static var besideThisBinary: String? { access(siblingPath, X_OK) == 0 ? siblingPath : nil }

    /// Where agent-runner-job beside this process's executable would be.
    public static let siblingPath: String = {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
        return (me as NSString).deletingLastPathComponent + "/agent-runner-job"
    }()
}
