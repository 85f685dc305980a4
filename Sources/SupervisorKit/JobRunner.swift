#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import Logging
import RunnerCore

/// Runs one claimed job: spawns its child, relays events to the database
/// (fenced on the lease), heartbeats, enforces cancel and timeout, and writes
/// the outcome.
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

    func run(_ job: ClaimedJob) async {
        var logger = logger
        logger[metadataKey: "job"] = "\(job.idText)"
        // Grows by the push token once it is fetched (GIT_TOKEN_SOURCE=user or github-app).
        let redactor = Locked(Redactor(secrets: [config.githubToken, config.geminiAPIKey, config.clineAPIKey].compactMap { $0 }
            + config.clineProviderHeaders.map(\.value)))
        let workspace = WorkspaceLayout(workdirRoot: config.workdirRoot, jobId: job.idText).root
        var clock = PhaseClock()
        // Set once the workspace exists: whatever happens next, it is kept or
        // removed below, by KEEP_WORKSPACES and the outcome, on every path.
        var workspaceMade = false
        var outcome: JobOutcome?
        do {
            logger.info("claimed", metadata: ["attempt": "\(job.attempt)"])
            if job.cancelRequested { return await write(job, .cancelled("cancelled before it ran"), logger) }
            if let projectId = job.projectId, !projectId.isNull,
               try await !store.acquireProjectLock(job, projectId: projectId, leaseSeconds: config.leaseSeconds) {
                logger.info("another job of this project is running; deferred until it ends")
                _ = try await store.deferForProject(job, leaseSeconds: config.leaseSeconds)
                return
            }
            clock.lap("lockMs")
            // The ticket first: a repository URL it refuses fails the job before anything is made.
            var (ticket, projectDocumentId) = try await makeTicket(job, workspace: workspace)
            clock.lap("ticketMs")
            let launch = JobLaunch(config: config, childPath: childPath)
            // cgroupfs writes and the removal's retries block: never on the cooperative pool.
            let cgroup: JobCgroup? = launch.wantsNamespaces ? try await onDedicatedThread { [config] in
                JobCgroup.create(name: "job-" + WorkspaceName.of(job.idText), maxProcesses: config.child.maxProcesses)
            } : nil
            defer { if let cgroup { BlockingPool.shared.submit { cgroup.remove() } } }
            ticket.pidsEventsPath = cgroup?.events
            clock.lap("cgroupMs")
            // Workspace preparation and fork/exec block: they run on a thread of their own.
            workspaceMade = true
            let identity = try await onDedicatedThread { try launch.prepareWorkspace(job, workspace) }
            defer { identity?.release() }
            clock.lap("workspaceMs")
            var notes: [String] = []
            if ticket.settings.network == .proxy, !launch.needsEgress(repoURL: ticket.repoURL) {
                ticket.settings.network = .none
                notes.append(JobLaunch.noEgressNote)
            }
            // Gemini's key stays with the egress proxy (started for it under JOB_NETWORK=host too): the child gets its route's token.
            let geminiToken = launch.wantsGeminiRoute(network: ticket.settings.network) ? GeminiRoute.newToken() : nil
            ticket.secrets.geminiRouteToken = geminiToken
            if let geminiToken { redactor.withLock { $0 = $0.adding(geminiToken) } }
            var proxy: EgressProxyProcess?
            if ticket.settings.network == .proxy || geminiToken != nil {
                proxy = try await EgressProxyProcess.start(ticket: launch.proxyTicket(workspace: workspace, repoURL: ticket.repoURL,
                                                                                      geminiRouteToken: geminiToken,
                                                                                      publish: ticket.publish),
                                                           cgroupName: cgroup.map { _ in "proxy-" + WorkspaceName.of(job.idText) },
                                                           logger: logger, redactor: redactor)
            }
            defer { proxy?.stop() }
            clock.lap("proxyMs")
            let ticketLine = Array(try JSONEncoder().encode(ticket)) + [0x0A]
            let warnings = Locked<[String]>([])
            let child = try await onDedicatedThread {
                try launch.spawnChild(ticket: ticketLine, workspace: workspace, identity: identity, cgroup: cgroup,
                                      warn: { w in warnings.withLock { $0.append(w) } })
            }
            for w in warnings.withLock({ $0 }) { logger.warning("\(w)") }
            clock.lap("forkMs")
            var (facts, lines, timings) = await supervise(job, child, proxy: proxy, cgroup: cgroup, repoURL: ticket.repoURL,
                                                          redactor: redactor, logger: logger,
                                                          warnings: notes + warnings.withLock { $0 }, launchTimings: clock.timings)
            facts.refusedForks = try await onDedicatedThread { cgroup?.refusedForks() ?? 0 }
            outcome = OutcomePolicy.outcome(policy(job).decide(facts), attempt: job.attempt)
            if case .done(var meta)? = outcome {
                // The child bounds its metadata; the supervisor does not rely on it.
                meta = LineFraming.bounded(meta)
                meta.timings = (meta.timings ?? [:]).merging(timings) { child, _ in child }
                outcome = .done(meta)
            }
            if let outcome { await write(job, outcome, logger, logs: lines, projectDocumentId: projectDocumentId) }
        } catch {
            let failure = error as? JobFailure ?? JobFailure(.internal, redactor.withLock { $0 }.redact("\(error)"))
            outcome = OutcomePolicy.outcome(policy(job).decide(RunFacts(failure: failure)), attempt: job.attempt)
            if let outcome { await write(job, outcome, logger) }
        }
        if workspaceMade {
            let final = outcome
            let log = logger
            _ = try? await onDedicatedThread { cleanWorkspace(workspace, outcome: final, logger: log) }
        }
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
        return (ticket, project.id)
    }

    /// Relays the child's events until it exits; returns what happened (for
    /// `OutcomePolicy`), the log lines not yet written (they go with the
    /// outcome) and the supervisor's share of the phase timings.
    func supervise(_ job: ClaimedJob, _ child: ChildProcess, proxy: EgressProxyProcess?, cgroup: JobCgroup?,
                   repoURL: String?, redactor: Locked<Redactor>, logger: Logger, warnings: [String],
                   launchTimings: [String: Int] = [:]) async -> (RunFacts, [String], [String: Int]) {
        let tokenFailure = Locked<JobFailure?>(nil)
        // What the egress proxy denied, by host: handed to the child with the push token (a pull request reports it).
        let egress = Locked(EgressReport())
        // A stdout line of the child that is not a protocol event: the child is killed at once.
        let protocolFailure = Locked<JobFailure?>(nil)
        let logs = LogBatcher(job: job, writes: writes)
        let firstEvent = Locked<ContinuousClock.Instant?>(nil)
        let control = ChildControl()
        let result = ResultBox()
        let started = ContinuousClock.now
        let leaseSeconds = config.leaseSeconds
        let deadline = started + .seconds(config.jobTimeoutSeconds)
        let lease = LeaseClock(start: job.leaseStart, leaseSeconds: leaseSeconds)
        leases.hold(job, lease: lease, control: control)
        defer { leases.release(job) }
        for w in warnings { await logs.note(w) }
        return await withTaskGroup(of: Void.self) { group in
            // Refusals and provider calls from the job's egress proxy.
            if let proxy {
                group.addTask {
                    await proxy.relay { event in
                        if event.type == "denied" {
                            RunnerMetrics.egressDenied(reason: event.reason ?? "unknown")
                            egress.withLock { $0.record(deniedTarget: event.target ?? "?") }
                        }
                        if event.type != "ready" { await logs.add(redactor.withLock { $0 }.redact(event.logLine)) }
                    }
                }
            }
            // Events from the child, read to the end even if this task is cancelled
            // (a result the child reported must not be lost).
            group.addTask {
                await Task.detached {
                for await line in child.output {
                    firstEvent.withLock { if $0 == nil { $0 = .now } }
                    switch line {
                    case .stderr(let text): await logs.add("[stderr] " + redactor.withLock { $0 }.redact(text))
                    case .stdout(let text):
                        guard let event = try? JSONDecoder().decode(ChildEvent.self, from: Data(text.utf8)) else {
                            let failure = LineFraming.malformed("a line the job child wrote on stdout", line: text,
                                                                redactor: redactor.withLock { $0 })
                            if protocolFailure.withLock({ f in defer { f = f ?? failure }; return f == nil }) {
                                await logs.add(failure.message)
                                child.signalGroup(SIGKILL)
                            }
                            continue
                        }
                        switch event {
                        case .log(let l): await logs.add(redactor.withLock { $0 }.redact(l))
                        // `finished` is written by the outcome's write, which sets it.
                        case .stage(.finished): break
                        // Written with the next batched flush (a lost lease shows there), or with the outcome.
                        case .stage(let s): await logs.stage(s)
                        case .succeeded, .failed: result.set(event)
                        case .pushTokenRequest:
                            if let failure = await handOverPushToken(job, repoURL: repoURL, child, cgroup: cgroup, logs: logs,
                                                                     redactor: redactor, egress: egress.withLock { $0 }) {
                                tokenFailure.withLock { $0 = failure }
                            }
                        }
                    }
                }
                }.value
            }
            // The periodic work, on its own clock: timeout, forced shutdown,
            // self-fencing and the signals (Enforcer; the lease and the cancel
            // flag are the LeaseKeeper's, the writes the WriteBatcher's). A
            // task of its own, cancelled the moment the child exits so that no
            // sleep of its delays the outcome; nothing else cancels it.
            let periodic = Task {
                await Enforcer(child: child, control: control, deadline: deadline, lease: lease,
                               fenceMargin: LeaseClock.fenceMargin(leaseSeconds: leaseSeconds),
                               shutdown: shutdown, logger: logger).run()
            }
            let status = await child.waitForExit()
            let exited = ContinuousClock.now
            RunnerMetrics.childExit({
                switch status {
                case .exited(0): return "exit_0"
                case .exited: return "exit_nonzero"
                case .signaled(let sig): return ExitStatus.signalName(sig).lowercased()
                }
            }())
            RunnerMetrics.jobDuration(ContinuousClock.now - started)
            control.markExited()
            periodic.cancel()
            proxy?.stop()
            await group.waitForAll()
            await periodic.value
            await logs.note("child exited: \(status)")
            let (lines, waited) = await logs.takeAll()
            logger.info("child exited", metadata: ["status": "\(status)"])
            // The supervisor's share of the per-phase timings (used if the job is done).
            var timings = launchTimings
            timings["afterExitMs"] = (ContinuousClock.now - exited).milliseconds
            if let first = firstEvent.withLock({ $0 }) { timings["spawnMs"] = (first - started).milliseconds }
            timings["databaseMs"] = waited.milliseconds
            let facts = RunFacts(result: result.value, exit: status, stop: control.reason,
                                 failure: tokenFailure.withLock { $0 },
                                 protocolFailure: protocolFailure.withLock { $0 })
            return (facts, lines, timings)
        }
    }

    /// Sends the push token once the child says the agent phase is over, and
    /// only if the job has no process but the child (`JobProcesses`: its
    /// cgroup, else every process below the child): no agent process can be
    /// there to read it. The token comes from
    /// GIT_TOKEN_SOURCE now, not earlier: it never exists while the agent runs.
    /// A token that cannot be had ends the child (its stdin closes) and is
    /// returned as the job's failure.
    func handOverPushToken(_ job: ClaimedJob, repoURL: String?, _ child: ChildProcess, cgroup: JobCgroup?,
                           logs: LogBatcher, redactor: Locked<Redactor>, egress: EgressReport? = nil) async -> JobFailure? {
        let pid = child.pid
        guard let others = try? await onDedicatedThread({ JobProcesses.others(child: pid, cgroup: cgroup) }) else {
            await logs.add("push token withheld: the job's processes cannot be listed")
            child.closeInput()
            return JobFailure(.sandboxViolation, "the job's processes could not be listed when the push token was due, "
                + "so it was withheld (the supervisor reads \(cgroup.map { $0.procs } ?? "/proc"))")
        }
        if !others.isEmpty {
            await logs.add("push token withheld: \(others.count) process(es) besides the job child are still running")
            child.closeInput()
            return JobFailure(.sandboxViolation, "processes of the agent were still running when the push token was due")
        }
        let token: String?
        let provider = PushTokenProvider(config: config, store: store)
        do {
            if let reason = provider.withheldReason(repoURL: repoURL) {
                await logs.add("push token withheld: " + reason)
                token = nil
            } else {
                token = try await provider.pushToken(for: job, repoURL: repoURL)
            }
        } catch {
            child.closeInput()
            return error as? JobFailure ?? JobFailure(.pushFailed, "cannot get a push token: \(error)")
        }
        // Whatever the child relays from now on is cleaned of this token too.
        if let token { redactor.withLock { $0 = $0.adding(token) } }
        let secrets = ChildSecrets(githubToken: token, egress: egress)
        guard let line = try? JSONEncoder().encode(secrets) else { return nil }
        do {
            try await child.send(Array(line) + [0x0A])
        } catch {
            await logs.add("cannot hand the push token to the job child: \(error)")
        }
        return nil
    }

    /// Records the outcome with the job's last log lines, retrying through a
    /// database outage (capped backoff, up to 15 minutes; the write stays
    /// fenced, so a lease that lapsed meanwhile makes it a no-op), then
    /// queues the project lock's release and, for a success, the project's
    /// record (`projectDocumentId`: its `_id` as the ticket read it) for the
    /// supervisor's next batched flush. A rejection by the server is logged
    /// as such, never as an outage.
    func write(_ job: ClaimedJob, _ outcome: JobOutcome, _ logger: Logger, logs: [String] = [],
               projectDocumentId: JSONValue? = nil) async {
        // Lines still pending (a run that ended before its relay) go with the outcome.
        let lines = logs + (await writes.takeLines(job)).lines
        var written = false
        do {
            do {
                written = try await DatabaseRetry.run("writing the outcome", giveUpAfter: .seconds(900), logger: logger) {
                    try await store.finish(job, outcome, logs: lines)
                }
            } catch let error as MongoError where error.isDocumentTooLarge && !lines.isEmpty {
                // The job document (or this write) is too large: the outcome matters more than its lines.
                var metadata = DatabaseRetry.metadata(error)
                metadata["droppedLines"] = "\(lines.count)"
                logger.error("the database rejected the outcome write as too large; writing the outcome without its log lines",
                             metadata: metadata)
                written = try await DatabaseRetry.run("writing the outcome", giveUpAfter: .seconds(900), logger: logger) {
                    try await store.finish(job, outcome, logs: [])
                }
            }
        } catch {
            if DatabaseRetry.isOutage(error) {
                logger.error("cannot record the outcome; the lease will expire and the job be retried",
                             metadata: DatabaseRetry.metadata(error))
            } else {
                logger.error("the database rejected the outcome write; the lease will expire and the job be retried",
                             metadata: DatabaseRetry.metadata(error))
            }
            return
        }
        guard written else {
            logger.warning("lease lost before the outcome was written; another runner owns the job")
            return
        }
        switch outcome {
        case .done: RunnerMetrics.finished(status: "done", code: "")
        case .failed(let f): RunnerMetrics.finished(status: "failed", code: f.code.rawValue)
        case .retry(let f, _): RunnerMetrics.finished(status: "retry", code: f.code.rawValue)
        case .cancelled: RunnerMetrics.finished(status: "cancelled", code: "")
        case .requeued: RunnerMetrics.finished(status: "requeued", code: "")
        }
        switch outcome {
        case .done(let meta): logger.info("done", metadata: ["commit": "\(meta.commitSha ?? "-")"])
        case .failed(let f): logger.warning("failed", metadata: ["code": "\(f.code.rawValue)", "error": "\(f.message)"])
        case .retry(let f, let at): logger.warning("will retry", metadata: ["code": "\(f.code.rawValue)", "at": "\(at)"])
        case .cancelled: logger.info("cancelled")
        case .requeued: logger.info("requeued for another runner")
        }
        // The lock's release and the project's record go with the supervisor's next batched flush.
        guard let p = job.projectId, !p.isNull else { return }
        await writes.release(job, projectId: p)
        if case .done = outcome, let projectDocumentId {
            await writes.recordSuccess(projectDocumentId: projectDocumentId, jobId: job.id)
        }
    }

    /// Keeps or removes the job's workspace, by KEEP_WORKSPACES and the
    /// outcome (`failed`: kept unless the job is done or requeued; a lost
    /// lease, nil, keeps it too).
    func cleanWorkspace(_ path: String, outcome: JobOutcome?, logger: Logger) {
        guard !Self.keepsWorkspace(config.keepWorkspaces, outcome: outcome) else { return }
        Self.removeWorkspace(path, logger: logger)
    }

    /// Whether KEEP_WORKSPACES keeps a workspace that ended with `outcome`.
    static func keepsWorkspace(_ policy: KeepWorkspaces, outcome: JobOutcome?) -> Bool {
        switch (policy, outcome) {
        case (.always, _): true
        case (.never, _): false
        case (.failed, .some(.done)), (.failed, .some(.requeued)): false
        case (.failed, _): true
        }
    }

    /// Removes a workspace; a failure is logged (a workspace left behind
    /// would otherwise fill the disk unseen). One already gone is no failure.
    static func removeWorkspace(_ path: String, logger: Logger) {
        do {
            try FileManager.default.removeItem(atPath: path)
        } catch let e as CocoaError where e.code == .fileNoSuchFile {
            return
        } catch {
            logger.warning("cannot remove the workspace; it stays on disk", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }
}
