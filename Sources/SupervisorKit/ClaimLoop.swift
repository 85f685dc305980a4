import Foundation
import JobStore
import Logging
import RunnerCore

/// The supervisor's claim loop: woken by the change stream, the tick (a
/// poll or a deferred job's due time) and each job's end, it sweeps pending
/// jobs the web app cancelled, claims while a slot is free and starts each
/// claimed job in the supervisor's task group; it stops claiming when the
/// supervisor drains, and ends once no job runs. Timers live in `tick`, the
/// escalation of a shutdown in `ShutdownEscalation`.
final class ClaimLoop: Sendable {
    let config: RunnerConfiguration
    let store: JobStore
    let owner: String
    let runner: JobRunner
    let writes: WriteBatcher
    let watcher: ChangeWatcher
    let checks: ServerChecks
    let health: HealthState
    let systemd: SystemdNotifier
    let shutdown: ShutdownSignal
    let exitWhenIdle: Bool
    let logger: Logger
    /// Wakes the loop (buffered: one pending wake-up at most).
    let wake: @Sendable () -> Void

    private let running = Locked(0)
    /// Jobs ended so far: a job that ends while the loop claims may wake
    /// others (its project's deferred jobs), so "idle" only holds when none did.
    private let ended = Locked(0)
    /// The projects of the jobs this supervisor runs, or whose lock's batched
    /// release is still to come (known here, never read).
    private let ownProjects = Locked<[String: JSONValue]>([:])
    /// Whether pending jobs the web app cancelled may be waiting: at start,
    /// on a cancel event for a job not running here, on each safety poll,
    /// and on every wake-up while the change stream is down.
    let sweepDue = Locked(true)
    /// The stream was reported down or silent (not merely unproven yet, as at start).
    let streamDown = Locked(false)
    /// Whether the stream works, and when the earliest deferred job is due.
    let schedule = Locked<(streaming: Bool, nextDue: Date?)>((false, nil))
    /// Why the supervisor cannot go on, once it cannot (exit 69).
    let cannotClaim = Locked<String?>(nil)

    init(config: RunnerConfiguration, store: JobStore, owner: String, runner: JobRunner, writes: WriteBatcher,
         watcher: ChangeWatcher, checks: ServerChecks, health: HealthState, systemd: SystemdNotifier,
         shutdown: ShutdownSignal, exitWhenIdle: Bool, logger: Logger, wake: @escaping @Sendable () -> Void) {
        self.config = config
        self.store = store
        self.owner = owner
        self.runner = runner
        self.writes = writes
        self.watcher = watcher
        self.checks = checks
        self.health = health
        self.systemd = systemd
        self.shutdown = shutdown
        self.exitWhenIdle = exitWhenIdle
        self.logger = logger
        self.wake = wake
    }

    /// Runs until the supervisor drains and no job runs (or, with
    /// `--exit-when-idle`, nothing is left to claim), starting each claimed
    /// job in `group`.
    func run(_ wakeups: AsyncStream<Void>, in group: inout DiscardingTaskGroup, watchdog: Duration?) async {
        var claims = ClaimState()
        var lastWatchdog = ContinuousClock.now
        wake()
        for await _ in wakeups {
            health.tick()
            // The watchdog is fed by the claim loop's own progress.
            if let watchdog, ContinuousClock.now - lastWatchdog >= watchdog {
                systemd.notify("WATCHDOG=1")
                lastWatchdog = .now
            }
            if shutdown.isDraining {
                if running.withLock({ $0 }) == 0 { return }
                continue
            }
            let endedBefore = ended.withLock { $0 }
            // Every claim below searched from this instant on: a job due since
            // is found by the due-time read after them (`readNextDue`).
            let searchedFrom = Date()
            if running.withLock({ $0 }) < config.concurrency, streamDown.withLock({ $0 }) || sweepDue.withLock({ $0 }) {
                await sweep(&claims)
            }
            var idle = false
            claiming: while running.withLock({ $0 }) < config.concurrency, !shutdown.isDraining {
                switch await claimOne(&claims) {
                case .claimed(let job): start(job, in: &group)
                case .nothing: idle = true; break claiming
                case .failed: break claiming
                }
            }
            if idle { await readNextDue(after: searchedFrom) }
            if exitWhenIdle, idle, running.withLock({ $0 }) == 0, ownProjects.withLock({ $0.isEmpty }),
               ended.withLock({ $0 }) == endedBefore {
                logger.info("nothing to claim and no job running; exiting (--exit-when-idle)")
                shutdown.drain()
                return
            }
        }
    }

    /// The loop's own state between wake-ups.
    struct ClaimState {
        var backoff = 0.5
        var rejections = 0
        var sweepFailing = false
        /// Projects whose lock is live elsewhere, read at most every
        /// `busyRefresh` (a job of one claimed meanwhile is deferred by the lock itself).
        var busyElsewhere: (at: ContinuousClock.Instant, projects: [JSONValue])?
    }

    /// Pending jobs the web app cancelled directly end `cancelled` without running.
    private func sweep(_ claims: inout ClaimState) async {
        do {
            sweepDue.withLock { $0 = false }
            try await store.sweepCancelledPending()
            claims.sweepFailing = false
        } catch {
            sweepDue.withLock { $0 = true }
            if !claims.sweepFailing {
                logger.warning("cannot end pending jobs whose cancellation was requested; will retry",
                               metadata: DatabaseRetry.metadata(error))
            }
            claims.sweepFailing = true
        }
    }

    /// What one claim found.
    enum Claim {
        case claimed(ClaimedJob)
        /// Nothing claimable now.
        case nothing
        /// The claim failed (after its backoff; the loop is woken again).
        case failed
    }

    /// One claim, with the projects busy elsewhere (re-read when stale, or
    /// when nothing but their jobs may be waiting).
    private func claimOne(_ claims: inout ClaimState) async -> Claim {
        do {
            var fresh = false
            if claims.busyElsewhere.map({ ContinuousClock.now - $0.at >= Supervisor.busyRefresh }) ?? true {
                claims.busyElsewhere = (.now, try await store.busyProjects())
                fresh = true
            }
            let own = ownProjects.withLock { Array($0.values) }
            var claimed = try await claim(busy: (claims.busyElsewhere?.projects ?? []) + own)
            let ownKeys = Set(own.map(\.jsonString))
            if claimed == nil, !fresh,
               claims.busyElsewhere?.projects.contains(where: { !ownKeys.contains($0.jsonString) }) == true {
                // Nothing but, perhaps, jobs of projects thought busy elsewhere: a
                // lock may have been released since they were read. Read again.
                claims.busyElsewhere = (.now, try await store.busyProjects())
                claimed = try await claim(busy: (claims.busyElsewhere?.projects ?? []) + ownProjects.withLock { Array($0.values) })
            }
            if claims.backoff > 0.5 { logger.notice("database reachable again; claiming resumed") }
            claims.backoff = 0.5
            health.database(ok: true)
            return claimed.map(Claim.claimed) ?? .nothing
        } catch {
            await failedClaim(error, &claims)
            return .failed
        }
    }

    private func claim(busy: [JSONValue]) async throws -> ClaimedJob? {
        try await store.claim(owner: owner, leaseSeconds: config.leaseSeconds, busyProjects: busy,
                              maxAttempts: config.maxAttempts, failedLapsed: { [logger] in Self.lapsed($0, logger) })
    }

    /// A claim that failed: a contradiction (counted), an outage (backoff) or
    /// a rejection (after `rejectionsBeforeExit`, the supervisor stops: exit 69).
    private func failedClaim(_ error: Error, _ claims: inout ClaimState) async {
        health.database(ok: false)
        if let c = error as? ServerContradiction {
            // Nothing claimed on it; the third stops the supervisor.
            checks.record(c)
        } else if DatabaseRetry.isOutage(error) {
            RunnerMetrics.databaseError()
            claims.rejections = 0
            if claims.backoff == 0.5 {
                logger.error("database unavailable; claiming paused, backing off", metadata: DatabaseRetry.metadata(error))
            }
        } else {
            // Not an outage: the server refuses a query the claim needs. It
            // fails the same way every time; after a few tries, stop (exit 69).
            RunnerMetrics.databaseError()
            claims.rejections += 1
            logger.error("the database rejected the claim", metadata: DatabaseRetry.metadata(error))
            if claims.rejections >= Supervisor.rejectionsBeforeExit {
                let operation = (error as? MongoError)?.operation ?? "claim"
                cannotClaim.withLock { $0 = "cannot claim: the database rejects the claim's \(operation): \(error)" }
                shutdown.force()
                wake()
                return
            }
        }
        try? await Task.sleep(for: .seconds(claims.backoff))
        claims.backoff = min(claims.backoff * 2, 30)
        // Retry after the backoff, whether or not the change stream or the poll wakes the loop.
        wake()
    }

    /// Starts a claimed job in the supervisor's task group; when it ends
    /// (and its project's lock release is written), the loop is woken.
    private func start(_ job: ClaimedJob, in group: inout DiscardingTaskGroup) {
        // Every slot busy: the change stream may answer more slowly (fewer getMores).
        slots(+1)
        RunnerMetrics.claimed()
        let queuedSince = job.job.notBefore ?? job.job.createdAt
        if let queuedSince, job.attempt == 1 { RunnerMetrics.claimLatency(Date().timeIntervalSince(queuedSince)) }
        if let p = job.projectId, !p.isNull { ownProjects.withLock { $0[job.token] = p } }
        group.addTask { [self] in
            await runner.run(job)
            // The project stays busy here until its lock's release is written.
            await writes.whenReleased(job) { [self] in
                ownProjects.withLock { _ = $0.removeValue(forKey: job.token) }
                ended.withLock { $0 += 1 }
                wake()
            }
            slots(-1)
            wake()
        }
    }

    /// Counts a slot taken (+1) or freed (-1), and says so to systemd and the metrics.
    @discardableResult
    private func slots(_ change: Int) -> Int {
        let busy = running.withLock { n in
            n += change
            watcher.setPatient(n >= config.concurrency)
            return n
        }
        systemd.notify("STATUS=\(busy)/\(config.concurrency) slots busy")
        RunnerMetrics.running(busy, slots: config.concurrency)
        return busy
    }

    /// Reads when the earliest deferred job is due, for the tick. `after`:
    /// when the claims that found nothing began, so that a job that became
    /// due while they ran (on a slow server) is still found, and claimed at once.
    private func readNextDue(after searchedFrom: Date) async {
        do {
            if let due = try await store.nextDue(after: searchedFrom) { schedule.withLock { $0.nextDue = due } }
        } catch {
            // The safety poll still wakes the loop; a deferred job waits at most that long.
            logger.warning("cannot read when the next deferred job is due", metadata: DatabaseRetry.metadata(error))
        }
    }

    /// A job whose lease lapsed at its last attempt, failed (or cancelled) by the claim.
    static func lapsed(_ lapse: LeaseLapse, _ logger: Logger) {
        if lapse.cancelRequested {
            RunnerMetrics.finished(status: "cancelled", code: "")
            logger.info("cancelled: its lease lapsed at its last attempt", metadata: ["job": "\(lapse.idText)"])
            return
        }
        RunnerMetrics.finished(status: "failed", code: JobErrorCode.leaseLost.rawValue)
        logger.warning("failed: its lease lapsed at its last attempt", metadata: [
            "job": "\(lapse.idText)", "code": "lease_lost", "attempts": "\(lapse.attempts)",
            "maxAttempts": "\(lapse.maxAttempts)", "lastOwner": "\(lapse.owner ?? "unknown")"])
    }

    /// The tick: polls every RUNNER_POLL_SECONDS while the change stream is
    /// down (a slow safety poll while it works), and wakes the loop when the
    /// earliest deferred job becomes due. Timers only; no database call.
    func tick(watchdog: Duration?) async {
        var lastPoll = ContinuousClock.now
        while !Task.isCancelled && !shutdown.isDraining {
            try? await Task.sleep(for: .milliseconds(250))
            let (streaming, due) = schedule.withLock { ($0.streaming, $0.nextDue) }
            let interval = streaming ? Supervisor.maxLoopInterval(config, watchdog: watchdog) : config.pollSeconds
            if ContinuousClock.now - lastPoll >= .seconds(interval) || (due.map { $0 <= Date() } ?? false) {
                lastPoll = .now
                schedule.withLock { $0.nextDue = nil }
                // A due time or a poll: the queue may have changed without an event.
                store.claimQueueChanged()
                sweepDue.withLock { $0 = true }
                wake()
            }
        }
    }
}
