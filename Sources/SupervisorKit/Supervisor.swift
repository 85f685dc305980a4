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
        let (wakeups, wakeContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let wake: @Sendable () -> Void = { wakeContinuation.yield() }
        // Answers that contradict each other: logged; at the third, stop (exit 69) after the running jobs.
        let cannotGoOn = Locked<String?>(nil)
        let checks = ServerChecks(logger: logger) { [shutdown] message in
            cannotGoOn.withLock { $0 = $0 ?? message }
            shutdown.drain()
            wake()
        }
        let leases = LeaseKeeper(store: store, leaseSeconds: config.leaseSeconds, pollSeconds: config.pollSeconds,
                                 logger: logger, checks: checks)
        let writes = WriteBatcher(store: store, leases: leases, logger: logger, progressInterval: Self.progressInterval,
                                  logBounds: config.child.logBounds, eventsMax: config.child.eventsMax)
        let runner = JobRunner(config: config, store: store, childPath: childPath, logger: logger, shutdown: shutdown,
                               leases: leases, writes: writes)
        // The stream proves itself with a marker of its own (StreamCheck) before it is relied on.
        let watcher = ChangeWatcher(store: store, markerId: owner)
        let loop = ClaimLoop(config: config, store: store, owner: owner, runner: runner, writes: writes, watcher: watcher,
                             checks: checks, health: health, systemd: systemd, shutdown: shutdown,
                             exitWhenIdle: exitWhenIdle, logger: logger, wake: wake)
        watch(watcher, loop: loop, leases: leases)
        defer { watcher.stop() }
        logger.info("supervisor started", metadata: ["owner": "\(owner)", "slots": "\(config.concurrency)"])
        systemd.notify("READY=1\nSTATUS=0/\(config.concurrency) slots busy")
        let watchdog = systemd.watchdogInterval
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                // Every running job's lease, renewed together; cancel polling while the stream is down.
                group.addTask { await leases.run(until: { Task.isCancelled }) }
                // Every running job's progress, lock release and project record, batched.
                group.addTask { await writes.run(until: { Task.isCancelled }) }
                group.addTask { await loop.tick(watchdog: watchdog) }
                group.addTask { [shutdown, config, logger] in
                    await ShutdownEscalation(shutdown: shutdown, grace: .seconds(config.shutdownGraceSeconds),
                                             logger: logger, wake: wake).run()
                }
                await loop.run(wakeups, in: &group, watchdog: watchdog)
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
            wake()
        }
        if let reason = loop.cannotClaim.withLock({ $0 }) ?? cannotGoOn.withLock({ $0 }) {
            logger.critical("\(reason)")
            throw SupervisorFailure(message: reason)
        }
        logger.info("supervisor stopped")
    }

    /// Connects the change stream to the claim loop: a running job's cancel
    /// goes to its lease's holder; any other change may make a job claimable
    /// (wakes the loop). The stream's state decides whether the loop polls.
    private func watch(_ watcher: ChangeWatcher, loop: ClaimLoop, leases: LeaseKeeper) {
        let jobStore = store
        watcher.startEvents(onEvent: { event in
            if let event, let cancelled = ChangeWatcher.cancelledJob(in: event),
               !leases.cancelRequested(jobId: cancelled) {
                loop.sweepDue.withLock { $0 = true }
            }
            jobStore.claimQueueChanged()
            loop.wake()
        }, onState: { [logger] ok, why in
            loop.streamDown.withLock { $0 = !ok }
            loop.schedule.withLock { $0.streaming = ok }
            leases.setStreaming(ok)
            jobStore.setClaimQueueWatched(ok)
            if !ok { loop.sweepDue.withLock { $0 = true } }
            if ok { logger.info("change stream open: new jobs are picked up at once", metadata: ["check": "\(why)"]) }
            else {
                logger.warning("change stream unavailable or silent; polling every RUNNER_POLL_SECONDS, cancels read with the lease renewal",
                               metadata: ["reason": "\(why)"])
            }
        })
    }
}
