import Foundation
import JobStore
import Logging
import RunnerCore
import ServiceLifecycle
import UnixSignals

/// The daemon: claims jobs while a slot is free and runs each in its own
/// child. A `Service`: on graceful shutdown it stops claiming, lets running
/// jobs finish for SHUTDOWN_GRACE_SECONDS, then stops and requeues the rest.
public final class Supervisor: Service, Sendable {
    let config: RunnerConfiguration
    let store: JobStore
    let childPath: String
    let logger: Logger
    let exitWhenIdle: Bool
    let owner: String
    public let shutdown = ShutdownSignal()
    let systemd = SystemdNotifier()
    /// What `/healthz` reports.
    public let health = HealthState()

    public init(config: RunnerConfiguration, store: JobStore, childPath: String, logger: Logger, exitWhenIdle: Bool) {
        self.config = config
        self.store = store
        self.childPath = childPath
        self.logger = logger
        self.exitWhenIdle = exitWhenIdle
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        owner = "\(String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)):\(getpid()):\(UUID().uuidString.prefix(8))"
    }

    public func run() async throws {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let running = Locked(0)
        /// Jobs ended so far: a job that ends while the loop claims may wake
        /// others (its project's deferred jobs), so "idle" only holds when none did.
        let ended = Locked(0)
        let cannotClaim = Locked<String?>(nil)
        // Answers that contradict each other: logged; at the third, stop (exit 69) after the running jobs.
        let checks = ServerChecks(logger: logger) { [shutdown, config] message in
            cannotClaim.withLock { $0 = $0 ?? message }
            shutdown.drain()
            wake.yield()
            Task {
                try? await Task.sleep(for: .seconds(config.shutdownGraceSeconds))
                shutdown.force()
            }
        }
        let leases = LeaseKeeper(store: store, leaseSeconds: config.leaseSeconds, pollSeconds: config.pollSeconds,
                                 logger: logger, checks: checks)
        let writes = WriteBatcher(store: store, leases: leases, logger: logger, progressInterval: Self.progressInterval,
                                  logBounds: config.child.logBounds)
        let runner = JobRunner(config: config, store: store, childPath: childPath, logger: logger, shutdown: shutdown,
                               leases: leases, writes: writes)
        let schedule = Locked<(streaming: Bool, nextDue: Date?)>((false, nil))
        /// Whether pending jobs the web app cancelled may be waiting: at start,
        /// on a cancel event for a job not running here, on each safety poll,
        /// and on every wake-up while the change stream is down.
        let sweepDue = Locked(true)
        // The stream proves itself with a marker of its own (StreamCheck) before it is relied on.
        let watcher = ChangeWatcher(store: store, markerId: owner)
        /// The stream was reported down or silent (not merely unproven yet, as at start).
        let streamDown = Locked(false)
        let jobStore = store
        watcher.startEvents(onEvent: { event in
            // A running job's cancel arrives here; anything else may make a job claimable.
            if let event, let cancelled = ChangeWatcher.cancelledJob(in: event),
               !leases.cancelRequested(jobId: cancelled) {
                sweepDue.withLock { $0 = true }
            }
            jobStore.claimQueueChanged()
            wake.yield()
        }, onState: { [logger] ok, why in
            streamDown.withLock { $0 = !ok }
            schedule.withLock { $0.streaming = ok }
            leases.setStreaming(ok)
            jobStore.setClaimQueueWatched(ok)
            if !ok { sweepDue.withLock { $0 = true } }
            if ok { logger.info("change stream open: new jobs are picked up at once", metadata: ["check": "\(why)"]) }
            else {
                logger.warning("change stream unavailable or silent; polling every RUNNER_POLL_SECONDS, cancels read with the lease renewal",
                               metadata: ["reason": "\(why)"])
            }
        })
        defer { watcher.stop() }
        logger.info("supervisor started", metadata: ["owner": "\(owner)", "slots": "\(config.concurrency)"])
        systemd.notify("READY=1\nSTATUS=0/\(config.concurrency) slots busy")
        let watchdog = systemd.watchdogInterval
        var lastWatchdog = ContinuousClock.now
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                // Every running job's lease, renewed together; cancel polling while the stream is down.
                group.addTask { await leases.run(until: { Task.isCancelled }) }
                // Every running job's progress, lock release and project record, batched.
                group.addTask { await writes.run(until: { Task.isCancelled }) }
                group.addTask { [config, schedule, watchdog, jobStore] in
                    // The tick: polls every RUNNER_POLL_SECONDS while the change stream is
                    // down (a slow safety poll while it works), and wakes the loop when
                    // the earliest deferred job becomes due. Timers only; no database call.
                    var lastPoll = ContinuousClock.now
                    while !Task.isCancelled && !self.shutdown.isDraining {
                        try? await Task.sleep(for: .milliseconds(250))
                        let (streaming, due) = schedule.withLock { ($0.streaming, $0.nextDue) }
                        let interval = streaming ? Supervisor.maxLoopInterval(config, watchdog: watchdog) : config.pollSeconds
                        if ContinuousClock.now - lastPoll >= .seconds(interval) || (due.map { $0 <= Date() } ?? false) {
                            lastPoll = .now
                            schedule.withLock { $0.nextDue = nil }
                            // A due time or a poll: the queue may have changed without an event.
                            jobStore.claimQueueChanged()
                            sweepDue.withLock { $0 = true }
                            wake.yield()
                        }
                    }
                }
                var backoff = 0.5
                var rejections = 0
                var sweepFailing = false
                // Projects whose lock is live elsewhere, read at most every `busyRefresh`
                // (a job of one claimed meanwhile is deferred by the lock itself), and
                // the projects of the jobs this supervisor runs or whose lock's batched
                // release is still to come (known here, never read).
                var busyElsewhere: (at: ContinuousClock.Instant, projects: [JSONValue])?
                let ownProjects = Locked<[String: JSONValue]>([:])
                // A job whose lease lapsed at its last attempt, failed by the claim.
                let lapsed: @Sendable (LeaseLapse) -> Void = { [logger] lapse in
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
                wake.yield()
                for await _ in wakeups {
                    health.tick()
                    // The watchdog is fed by the claim loop's own progress.
                    if let watchdog, ContinuousClock.now - lastWatchdog >= watchdog {
                        systemd.notify("WATCHDOG=1")
                        lastWatchdog = .now
                    }
                    if shutdown.isDraining {
                        if running.withLock({ $0 }) == 0 { break }
                        continue
                    }
                    var idle = false
                    let endedBefore = ended.withLock { $0 }
                    // While the stream is unproven (start), the sweep follows the polls (sweepDue).
                    if running.withLock({ $0 }) < config.concurrency, streamDown.withLock({ $0 }) || sweepDue.withLock({ $0 }) {
                        // Pending jobs the web app cancelled directly end `cancelled` without running.
                        do {
                            sweepDue.withLock { $0 = false }
                            try await store.sweepCancelledPending()
                            sweepFailing = false
                        } catch {
                            sweepDue.withLock { $0 = true }
                            if !sweepFailing {
                                logger.warning("cannot end pending jobs whose cancellation was requested; will retry",
                                               metadata: DatabaseRetry.metadata(error))
                            }
                            sweepFailing = true
                        }
                    }
                    while running.withLock({ $0 }) < config.concurrency, !shutdown.isDraining {
                        let job: ClaimedJob?
                        do {
                            var fresh = false
                            if busyElsewhere.map({ ContinuousClock.now - $0.at >= Self.busyRefresh }) ?? true {
                                busyElsewhere = (.now, try await store.busyProjects())
                                fresh = true
                            }
                            let own = ownProjects.withLock { Array($0.values) }
                            var busy = (busyElsewhere?.projects ?? []) + own
                            var claimed = try await store.claim(owner: owner, leaseSeconds: config.leaseSeconds, busyProjects: busy,
                                                                maxAttempts: config.maxAttempts, failedLapsed: lapsed)
                            let ownKeys = Set(own.map(\.jsonString))
                            if claimed == nil, !fresh,
                               busyElsewhere?.projects.contains(where: { !ownKeys.contains($0.jsonString) }) == true {
                                // Nothing but, perhaps, jobs of projects thought busy elsewhere: a
                                // lock may have been released since they were read. Read again.
                                busyElsewhere = (.now, try await store.busyProjects())
                                busy = (busyElsewhere?.projects ?? []) + ownProjects.withLock { Array($0.values) }
                                claimed = try await store.claim(owner: owner, leaseSeconds: config.leaseSeconds, busyProjects: busy,
                                                                maxAttempts: config.maxAttempts, failedLapsed: lapsed)
                            }
                            job = claimed
                            if backoff > 0.5 { logger.notice("database reachable again; claiming resumed") }
                            backoff = 0.5
                            health.database(ok: true)
                        } catch {
                            health.database(ok: false)
                            if let c = error as? ServerContradiction {
                                // Nothing claimed on it; the third stops the supervisor.
                                checks.record(c)
                            } else if DatabaseRetry.isOutage(error) {
                                RunnerMetrics.databaseError()
                                rejections = 0
                                if backoff == 0.5 {
                                    logger.error("database unavailable; claiming paused, backing off",
                                                 metadata: DatabaseRetry.metadata(error))
                                }
                            } else {
                                // Not an outage: the server refuses a query the claim needs. It
                                // fails the same way every time; after a few tries, stop (exit 69).
                                RunnerMetrics.databaseError()
                                rejections += 1
                                logger.error("the database rejected the claim", metadata: DatabaseRetry.metadata(error))
                                if rejections >= Self.rejectionsBeforeExit {
                                    let operation = (error as? MongoError)?.operation ?? "claim"
                                    cannotClaim.withLock { $0 = "cannot claim: the database rejects the claim's \(operation): \(error)" }
                                    shutdown.force()
                                    wake.yield()
                                    break
                                }
                            }
                            try? await Task.sleep(for: .seconds(backoff))
                            backoff = min(backoff * 2, 30)
                            // Retry after the backoff, whether or not the change stream or the poll wakes the loop.
                            wake.yield()
                            break
                        }
                        guard let job else { idle = true; break }
                        // Every slot busy: the change stream may answer more slowly (fewer getMores).
                        let busy = running.withLock { n in
                            n += 1
                            watcher.setPatient(n >= config.concurrency)
                            return n
                        }
                        systemd.notify("STATUS=\(busy)/\(config.concurrency) slots busy")
                        RunnerMetrics.claimed()
                        RunnerMetrics.running(busy, slots: config.concurrency)
                        let queuedSince = job.job.notBefore ?? job.job.createdAt
                        if let queuedSince, job.attempt == 1 { RunnerMetrics.claimLatency(Date().timeIntervalSince(queuedSince)) }
                        if let p = job.projectId, !p.isNull { ownProjects.withLock { $0[job.token] = p } }
                        group.addTask { [systemd, config] in
                            await runner.run(job)
                            // The project stays busy here until its lock's release is written.
                            await writes.whenReleased(job) {
                                ownProjects.withLock { _ = $0.removeValue(forKey: job.token) }
                                ended.withLock { $0 += 1 }
                                wake.yield()
                            }
                            let busy = running.withLock { n in
                                n -= 1
                                watcher.setPatient(n >= config.concurrency)
                                return n
                            }
                            systemd.notify("STATUS=\(busy)/\(config.concurrency) slots busy")
                            RunnerMetrics.running(busy, slots: config.concurrency)
                            wake.yield()
                        }
                    }
                    if idle {
                        do {
                            if let due = try await store.nextDue() { schedule.withLock { $0.nextDue = due } }
                        } catch {
                            // The safety poll still wakes the loop; a deferred job waits at most that long.
                            logger.warning("cannot read when the next deferred job is due", metadata: DatabaseRetry.metadata(error))
                        }
                    }
                    if exitWhenIdle, idle, running.withLock({ $0 }) == 0, ownProjects.withLock({ $0.isEmpty }),
                       ended.withLock({ $0 }) == endedBefore {
                        logger.info("nothing to claim and no job running; exiting (--exit-when-idle)")
                        shutdown.drain()
                        break
                    }
                }
                group.cancelAll()
            }
            // What the last jobs left to write (lock releases, project records), even if this task was cancelled.
            await Task.detached { await writes.drain() }.value
            try? await store.removeStreamMarker(owner)
        } onGracefulShutdown: { [shutdown, logger, config, systemd] in
            systemd.notify("STOPPING=1\nSTATUS=draining")
            logger.notice("shutdown requested: no new claims; waiting for running jobs",
                          metadata: ["grace": "\(config.shutdownGraceSeconds)s"])
            shutdown.drain()
            wake.yield()
            Task {
                // A second SIGTERM or SIGINT skips the wait (jobs are still requeued).
                var seen = 0
                for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    seen += 1
                    if seen >= 1 {
                        logger.notice("second signal: stopping running jobs now and requeueing them")
                        shutdown.force()
                        break
                    }
                }
            }
            Task {
                try? await Task.sleep(for: .seconds(config.shutdownGraceSeconds))
                if !shutdown.isForced {
                    logger.notice("shutdown grace over: stopping running jobs and requeueing them")
                    shutdown.force()
                }
            }
        }
        if let reason = cannotClaim.withLock({ $0 }) {
            logger.critical("\(reason)")
            throw SupervisorFailure(message: reason)
        }
        logger.info("supervisor stopped")
    }
}
