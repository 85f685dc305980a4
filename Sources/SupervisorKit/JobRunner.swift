#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import Logging
import RunnerCore

/// Runs one claimed job, step by step, each step in a file of its own:
/// the project lock and the ticket (here), the launch
/// (`JobLaunch.withLaunched`), the relay while the child runs (`ChildRelay`,
/// with `PushTokenHandOver`), the decision (`OutcomePolicy`) and the write
/// (`OutcomeWriter`); then the workspace is kept or removed, on every path.
struct JobRunner: Sendable {
    let config: RunnerConfiguration
    let store: JobStore
    let childPath: String
    let logger: Logger
    let shutdown: ShutdownSignal
    /// Renews this job's lease with the supervisor's others and delivers its cancel.
    let leases: LeaseKeeper
    /// Writes this job's progress, lock release and project record with the supervisor's others.
    let writes: WriteBatcher

    var writer: OutcomeWriter { OutcomeWriter(store: store, writes: writes, keepWorkspaces: config.keepWorkspaces) }

    func run(_ job: ClaimedJob) async {
        var logger = logger
        logger[metadataKey: "job"] = "\(job.idText)"
        let workspace = WorkspaceLayout(workdirRoot: config.workdirRoot, jobId: job.idText).root
        let (outcome, workspaceMade) = await attempt(job, workspace: workspace, logger: logger)
        // Whichever way the attempt ended, once its workspace exists it is
        // kept or removed here, by KEEP_WORKSPACES and the outcome.
        if workspaceMade { await writer.retainWorkspace(workspace, outcome: outcome, logger: logger) }
    }

    /// One attempt: returns the outcome written (nil: none, as for a lost
    /// lease or a job deferred for its project) and whether its workspace was made.
    func attempt(_ job: ClaimedJob, workspace: String, logger: Logger) async -> (JobOutcome?, Bool) {
        // Grows by the push token once it is fetched (GIT_TOKEN_SOURCE=user or github-app).
        let redactor = Locked(Redactor(secrets: [config.githubToken, config.geminiAPIKey, config.clineAPIKey].compactMap { $0 }
            + config.clineProviderHeaders.map(\.value)))
        var clock = PhaseClock()
        var workspaceMade = false
        var outcome: JobOutcome?
        let lease = LeaseClock(start: job.leaseStart, leaseSeconds: config.leaseSeconds)
        let control = ChildControl()
        defer { leases.release(job) }
        do {
            logger.info("claimed", metadata: ["attempt": "\(job.attempt)"])
            // The job's event stream, numbered on from its earlier attempts: before any path that writes an outcome.
            await writes.startEvents(job)
            if job.cancelRequested {
                outcome = .cancelled("cancelled before it ran")
                await writer.write(job, .cancelled("cancelled before it ran"), logger)
                return (outcome, false)
            }
            // The lease is held from here (renewed with the supervisor's others) until the relay ends, and let go
            // of before any write that ends or defers the attempt (one the renewal must not see mid-way).
            leases.hold(job, lease: lease, control: control)
            // The job's own `budget` is untrusted input: checked before anything of the job is made.
            let budget = try config.spend.budget(for: job.job)
            // The daily budgets of the job's user and project, shared by every supervisor.
            let daily = DailySpend(config.spend.daily, job: job, store: store)
            if let daily, let over = try await daily.overToday() {
                if config.spend.daily.action == .fail { throw over }
                leases.release(job)
                let until = DailyBudgetSettings.nextDay()
                logger.info("a daily budget is spent; the job waits", metadata: ["until": "\(until)"])
                _ = try await store.deferUntil(job, notBefore: until, line: over.message + "; waiting until \(until) (DAILY_BUDGET_ACTION=wait)")
                return (nil, false)
            }
            if let projectId = job.projectId, !projectId.isNull,
               try await !store.acquireProjectLock(job, projectId: projectId, leaseSeconds: config.leaseSeconds) {
                leases.release(job)
                logger.info("another job of this project is running; deferred until it ends")
                _ = try await store.deferForProject(job, leaseSeconds: config.leaseSeconds)
                return (nil, false)
            }
            clock.lap("lockMs")
            // The ticket first: a repository URL it refuses fails the job before anything is made.
            let (ticket, projectDocumentId) = try await makeTicket(job, workspace: workspace)
            clock.lap("ticketMs")
            workspaceMade = true
            if let delay = Supervisor.launchDelay { try await Task.sleep(for: delay) }
            // A lease lost (or about to lapse) before the spawn: no child.
            let margin = LeaseClock.fenceMargin(leaseSeconds: config.leaseSeconds)
            let mayStart: @Sendable () -> Bool = {
                if !control.fenced, lease.mayLapse(within: margin) { control.fence() }
                return !control.fenced
            }
            let ended = try await JobLaunch(config: config, childPath: childPath)
                .withLaunched(job, ticket: ticket, budget: budget, sharedSpend: daily != nil, redactor: redactor, logger: logger,
                              clock: clock, mayStart: mayStart) { launched in
                    var relay = ChildRelay(job: job, launched: launched, repoURL: ticket.repoURL, redactor: redactor,
                                           logger: logger, leaseSeconds: config.leaseSeconds,
                                           timeoutSeconds: config.jobTimeoutSeconds, leases: leases, writes: writes,
                                           shutdown: shutdown, tokens: PushTokenHandOver(config: config, store: store),
                                           lease: lease, control: control)
                    if ticket.checkpoint != nil { relay.checkpoints = config.checkpoint }
                    relay.daily = daily
                    var ended = await relay.run()
                    let cgroup = launched.cgroup
                    ended.facts.refusedForks = try await onDedicatedThread { cgroup?.refusedForks() ?? 0 }
                    return ended
                }
            outcome = OutcomePolicy.outcome(policy(job).decide(ended.facts), attempt: job.attempt)
            if case .done(var meta)? = outcome {
                // The child bounds its metadata; the supervisor does not rely on it.
                meta = LineFraming.bounded(meta)
                meta.timings = (meta.timings ?? [:]).merging(ended.timings) { child, _ in child }
                outcome = .done(meta)
            }
            // The model calls the egress proxy metered: `metadata.usage` whatever the outcome, and a log line.
            let lines = ended.lines + (ended.usage.map { [$0.summary] } ?? [])
            if let outcome {
                await writer.write(job, outcome, logger, logs: lines, projectDocumentId: projectDocumentId, usage: ended.usage,
                                   checkpoint: ended.facts.checkpoint)
            }
        } catch {
            leases.release(job)
            let failure = error as? JobFailure ?? JobFailure(.internal, redactor.withLock { $0 }.redact("\(error)"))
            // A lease lost before the child ran, or while the launch failed: the job is another runner's.
            let stop: StopReason? = control.fenced || error is LeaseLostBeforeSpawn ? .leaseLost : nil
            if stop != nil { logger.warning("the lease was lost before the child started; the job is left to its next claim") }
            outcome = OutcomePolicy.outcome(policy(job).decide(RunFacts(stop: stop, failure: failure)), attempt: job.attempt)
            if let outcome { await writer.write(job, outcome, logger) }
        }
        // A lost lease: the job is another runner's, and so is the rest of its
        // event stream (this attempt's unwritten events would collide with its numbering).
        if outcome == nil { _ = await writes.takeEvents(job) }
        return (outcome, workspaceMade)
    }

    /// The outcome policy for this attempt of `job`.
    func policy(_ job: ClaimedJob) -> OutcomePolicy {
        OutcomePolicy(attempt: job.attempt, maxAttempts: job.job.maxAttempts ?? config.maxAttempts,
                      timeoutSeconds: config.jobTimeoutSeconds, cpuSeconds: config.child.cpuSeconds,
                      maxTotalMB: config.child.maxTotalMB, maxProcesses: config.child.maxProcesses)
    }

    /// The ticket: the job, its project (read through the typed `Job` and
    /// `Project`, with their aliases) and settings. The project's repository
    /// URL is checked here (`RemotePolicy`: `invalid_remote`), before the job
    /// gets a workspace, a proxy or a child. No key: the Gemini and
    /// Cline keys stay with the egress proxy (`run` adds the Gemini route's
    /// token), and the push token is sent later, after the agent phase (see
    /// `supervise`). Also the
    /// project's `_id`, for recording a success without reading it again.
    func makeTicket(_ job: ClaimedJob, workspace: String) async throws -> (JobTicket, JSONValue) {
        guard let spec = job.job.architectureSpec else {
            throw JobFailure(.invalidSpec, "the job has no architecture_spec")
        }
        guard let projectRef = job.projectId else {
            throw JobFailure(.invalidSpec, "the job has no projectId (nor project_id)")
        }
        guard let project = try await store.resolveProject(projectRef) else {
            throw JobFailure(.invalidSpec, "project \(JobStore.idText(projectRef)) does not exist "
                + "(no project has it as _id or projectId)")
        }
        if let url = project.repoURL {
            let policy = config.remotePolicy
            // realpath and stat of a local remote: off the cooperative pool.
            _ = try await onDedicatedThread { try policy.check(url) }
        }
        var ticket = JobTicket(jobId: job.idText, attempt: job.attempt,
                               projectName: project.name ?? "project", repoURL: project.repoURL,
                               architectureSpec: spec, workspace: workspace, settings: config.child,
                               secrets: ChildSecrets(githubToken: nil), prompt: job.job.prompt)
        ticket.publish = try PublishPlan.decide(job: job.job, jobId: job.idText, project: project, settings: config.child)
        ticket.settings.generators = try AgentChoice.chain(job: job.job, settings: config.child)
        ticket.checkpoint = checkpointPlan(job, repoURL: project.repoURL)
        return (ticket, project.id)
    }

    /// Where a stopped run's partial work goes (its work-in-progress branch),
    /// and, with RESUME_FROM_CHECKPOINT=true, the job's last checkpoint to
    /// start from; nil without a remote or with CHECKPOINT_ON=none.
    func checkpointPlan(_ job: ClaimedJob, repoURL: String?) -> CheckpointPlan? {
        let settings = config.checkpoint
        guard repoURL != nil, !settings.on.isEmpty else { return nil }
        let branch = settings.branch(jobId: job.idText)
        let stored = settings.resume ? CheckpointInfo.stored(job.job.document["metadata"]?["checkpoint"], expectedBranch: branch) : nil
        return CheckpointPlan(branch: branch, resumeFrom: stored)
    }
}
