import Foundation
import JobStore
import Logging
import RunnerCore

/// The job's lease was lost (or is about to lapse) before its child was
/// spawned: no child, and no outcome (the job is another runner's).
struct LeaseLostBeforeSpawn: Error {}

/// What a launched job holds while its child runs: the child, its egress
/// proxy and its pids cgroup, with the notes for its log and the launch's
/// phase timings. Owned by `JobLaunch.withLaunched`, which releases all of
/// it when its body ends, on every path.
struct LaunchedJob: Sendable {
    let child: ChildProcess
    let proxy: EgressProxyProcess?
    let cgroup: JobCgroup?
    /// Lines for the job's log from the launch (no egress needed, spawn warnings).
    let notes: [String]
    /// The supervisor's launch phases, in milliseconds (`metadata.timings`).
    let timings: [String: Int]
}

extension JobLaunch {
    /// Launches the job in order (its pids cgroup, its workspace, its egress
    /// proxy when it needs one, then the child), runs `body` with it, and
    /// releases whatever was made (the proxy stopped, the child's identity
    /// given back, the cgroup removed), however `body` or the launch ends.
    /// The workspace itself is not removed here: `JobRunner` keeps or removes
    /// it by KEEP_WORKSPACES once the outcome is known. The child is spawned
    /// only if `mayStart` still holds then (the job's lease): else
    /// `LeaseLostBeforeSpawn`.
    func withLaunched<T: Sendable>(_ job: ClaimedJob, ticket: JobTicket, budget: JobBudget? = nil, sharedSpend: Bool = false,
                                   redactor: Locked<Redactor>, logger: Logger, clock: PhaseClock,
                                   mayStart: @escaping @Sendable () -> Bool = { true },
                                   _ body: (LaunchedJob) async throws -> T) async throws -> T {
        var ticket = ticket
        var clock = clock
        let workspace = ticket.workspace
        // cgroupfs writes and the removal's retries block: never on the cooperative pool.
        let cgroup: JobCgroup? = wantsNamespaces ? try await onDedicatedThread { [config] in
            JobCgroup.create(name: "job-" + WorkspaceName.of(job.idText), maxProcesses: config.child.maxProcesses)
        } : nil
        defer { if let cgroup { BlockingPool.shared.submit { cgroup.remove() } } }
        ticket.pidsEventsPath = cgroup?.events
        clock.lap("cgroupMs")
        // Workspace preparation and fork/exec block: they run on a thread of their own.
        let identity = try await onDedicatedThread { try prepareWorkspace(job, workspace) }
        defer { identity?.release() }
        clock.lap("workspaceMs")
        var notes: [String] = []
        if ticket.settings.network == .proxy, !needsEgress(repoURL: ticket.repoURL, generators: ticket.settings.generators) {
            ticket.settings.network = .none
            notes.append(Self.noEgressNote)
        }
        // Gemini's key stays with the egress proxy (started for it under JOB_NETWORK=host too): the child gets its route's token.
        let geminiToken = wantsGeminiRoute(network: ticket.settings.network) ? GeminiRoute.newToken() : nil
        ticket.secrets.geminiRouteToken = geminiToken
        if let geminiToken { redactor.withLock { $0 = $0.adding(geminiToken) } }
        var proxy: EgressProxyProcess?
        if ticket.settings.network == .proxy || geminiToken != nil {
            proxy = try await EgressProxyProcess.start(ticket: proxyTicket(workspace: workspace, repoURL: ticket.repoURL,
                                                                           geminiRouteToken: geminiToken,
                                                                           publish: ticket.publish, budget: budget,
                                                                           sharedSpend: sharedSpend),
                                                       cgroupName: cgroup.map { _ in "proxy-" + WorkspaceName.of(job.idText) },
                                                       logger: logger, redactor: redactor)
        }
        defer { proxy?.stop() }
        clock.lap("proxyMs")
        let ticketLine = Array(try JSONEncoder().encode(ticket)) + [0x0A]
        let warnings = Locked<[String]>([])
        let child = try await onDedicatedThread {
            guard mayStart() else { throw LeaseLostBeforeSpawn() }
            return try spawnChild(ticket: ticketLine, workspace: workspace, identity: identity, cgroup: cgroup,
                           warn: { w in warnings.withLock { $0.append(w) } })
        }
        let spawnWarnings = warnings.withLock { $0 }
        for w in spawnWarnings { logger.warning("\(w)") }
        clock.lap("forkMs")
        return try await body(LaunchedJob(child: child, proxy: proxy, cgroup: cgroup, notes: notes + spawnWarnings,
                                          timings: clock.timings))
    }
}
