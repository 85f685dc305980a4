#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import Logging
import RunnerCore

/// Why the supervisor stopped a child early.
enum StopReason: Sendable, Equatable {
    case cancelled, timeout, leaseLost, shutdown
}

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
            defer { if let cgroup { Thread.detachNewThread { cgroup.remove() } } }
            ticket.pidsEventsPath = cgroup?.events
            clock.lap("cgroupMs")
            // Workspace preparation and fork/exec block: they run on a thread of their own.
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
                                                                                      geminiRouteToken: geminiToken),
                                                           cgroupName: cgroup.map { _ in "proxy-" + WorkspaceName.of(job.idText) })
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
            var (outcome, lines) = await supervise(job, child, proxy: proxy, cgroup: cgroup, repoURL: ticket.repoURL,
                                                   redactor: redactor, logger: logger,
                                                   warnings: notes + warnings.withLock { $0 }, launchTimings: clock.timings)
            let refused = try await onDedicatedThread { cgroup?.refusedForks() ?? 0 }
            if refused > 0, outcome.map(Self.overridableByLimit) == true {
                outcome = decide(job, JobFailure(.resourceLimit, "process limit JOB_MAX_PROCESSES=\(config.child.maxProcesses) "
                    + "reached: the job tried to start more processes \(refused) time(s)"))
            }
            if let outcome { await write(job, outcome, logger, logs: lines, projectDocumentId: projectDocumentId) }
            let final = outcome
            _ = try? await onDedicatedThread { cleanWorkspace(workspace, outcome: final) }
        } catch let failure as JobFailure {
            await write(job, decide(job, failure), logger)
        } catch {
            await write(job, decide(job, JobFailure(.internal, redactor.withLock { $0 }.redact("\(error)"))), logger)
        }
    }

    /// Whether a fork bomb (refused forks in the job's cgroup) turns this outcome into `resource_limit`.
    static func overridableByLimit(_ o: JobOutcome) -> Bool {
        switch o {
        case .done, .failed, .retry: return true
        case .cancelled, .requeued: return false
        }
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
        return (JobTicket(jobId: job.idText, attempt: job.attempt,
                         projectName: project.name ?? "project", repoURL: project.repoURL,
                         architectureSpec: spec, workspace: workspace, settings: config.child,
                         secrets: ChildSecrets(githubToken: nil),
                         prompt: job.job.prompt), project.id)
    }

    /// Relays the child's events until it exits; returns the outcome to
    /// record, or nil when the lease was lost (nothing more may be written),
    /// and the log lines not yet written (they go with the outcome).
    func supervise(_ job: ClaimedJob, _ child: ChildProcess, proxy: EgressProxyProcess?, cgroup: JobCgroup?,
                   repoURL: String?, redactor: Locked<Redactor>, logger: Logger, warnings: [String],
                   launchTimings: [String: Int] = [:]) async -> (JobOutcome?, [String]) {
        let tokenFailure = Locked<JobFailure?>(nil)
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
                    for await line in proxy.process.output {
                        guard case .stdout(let text) = line,
                              let event = try? JSONDecoder().decode(EgressEvent.self, from: Data(text.utf8)) else { continue }
                        if event.type == "denied" { RunnerMetrics.egressDenied(reason: event.reason ?? "unknown") }
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
                            await logs.add("[child] " + redactor.withLock { $0 }.redact(text)); continue
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
                                                                     redactor: redactor) {
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
            var decided = outcome(job, status: status, result: result.value, stop: control.reason)
            if let failure = tokenFailure.withLock({ $0 }), control.reason == nil { decided = decide(job, failure) }
            guard case .done(var meta)? = decided else { return (decided, lines) }
            // The supervisor's share of the per-phase timings.
            var timings = (meta.timings ?? [:]).merging(launchTimings) { child, _ in child }
            timings["afterExitMs"] = (ContinuousClock.now - exited).milliseconds
            if let first = firstEvent.withLock({ $0 }) { timings["spawnMs"] = (first - started).milliseconds }
            timings["databaseMs"] = waited.milliseconds
            meta.timings = timings
            return (.done(meta), lines)
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
                           logs: LogBatcher, redactor: Locked<Redactor>) async -> JobFailure? {
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
        let secrets = ChildSecrets(githubToken: token)
        guard let line = try? JSONEncoder().encode(secrets) else { return nil }
        do {
            try await child.send(Array(line) + [0x0A])
        } catch {
            await logs.add("cannot hand the push token to the job child: \(error)")
        }
        return nil
    }

    /// The outcome from the child's exit, its result event and any stop reason.
    /// A success the child already reported wins over a later cancel, timeout
    /// or shutdown: its commit is on the remote, so the job is `done` with its
    /// metadata. Only a lost lease (nothing may be written) overrides it.
    func outcome(_ job: ClaimedJob, status: ExitStatus, result: ChildEvent?, stop: StopReason?) -> JobOutcome? {
        if stop == .leaseLost { return nil }
        // The child bounds its metadata; the supervisor does not rely on it.
        if case .succeeded(let meta)? = result { return .done(LineFraming.bounded(meta)) }
        switch stop {
        case .leaseLost: return nil
        case .cancelled: return .cancelled("cancelled while running")
        case .shutdown: return .requeued
        case .timeout:
            return decide(job, JobFailure(.timeout, "the job ran longer than JOB_TIMEOUT_SECONDS=\(config.jobTimeoutSeconds)"))
        case nil: break
        }
        if case .failed(let f)? = result { return decide(job, f) }
        switch status {
        case .signaled(SIGSYS):
            return decide(job, JobFailure(.sandboxViolation, "the child was killed by SIGSYS: a forbidden system call"))
        case .signaled(SIGXCPU):
            return decide(job, JobFailure(.resourceLimit, "CPU limit JOB_CPU_SECONDS=\(config.child.cpuSeconds) exceeded (SIGXCPU)"))
        case .signaled(SIGXFSZ):
            return decide(job, JobFailure(.resourceLimit, "file size limit exceeded: RLIMIT_FSIZE = JOB_MAX_TOTAL_MB+64 = "
                + "\(config.child.maxTotalMB + 64) MB (SIGXFSZ)"))
        default:
            return decide(job, JobFailure(.childCrashed, "the job child ended without a result: \(status)"))
        }
    }

    /// Retry (back to pending with backoff) or fail, by retryability and attempts.
    func decide(_ job: ClaimedJob, _ failure: JobFailure) -> JobOutcome {
        let max = job.job.maxAttempts ?? config.maxAttempts
        guard failure.retryable, job.attempt < max else { return .failed(failure) }
        let base = min(pow(Double(job.attempt), 4), 3600)
        return .retry(failure, notBefore: Date().addingTimeInterval(base + Double.random(in: 0...(base / 4 + 1))))
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

    func cleanWorkspace(_ path: String, outcome: JobOutcome?) {
        let keep: Bool
        switch (config.keepWorkspaces, outcome) {
        case (.always, _): keep = true
        case (.never, _): keep = false
        case (.failed, .some(.done)), (.failed, .some(.requeued)): keep = false
        case (.failed, _): keep = true
        }
        if !keep { try? FileManager.default.removeItem(atPath: path) }
    }
}
