import Foundation
import JobStore
import Logging
import RunnerCore

/// The writes of every job this supervisor runs that need not happen the
/// moment they arise, batched across jobs (issue 15): progress (stages and
/// log lines), project lock releases and the projects' success records. A
/// flush, every `interval` while something waits (at once when a job has 200
/// lines pending), sends one request per kind that has something: a job's
/// stage reaches the database within `interval`, and a short job, whose
/// outcome write carries its lines, costs no progress write of its own.
///
/// One flush at a time. A job's outcome first waits for a flush under way
/// (its lines stay in order and none is written after the outcome); what it
/// finds pending goes with the outcome. A flush that meets an outage keeps
/// what it held for the next one (a job's lines bounded at 5000, the oldest
/// dropped with a marker; releases and success records given up after
/// `giveUpAfter`); what the server rejects is logged, not retried.
actor WriteBatcher {
    private struct Release {
        let job: ClaimedJob
        let projectId: JSONValue
        let since: ContinuousClock.Instant
    }
    private struct Success {
        let projectDocumentId: JSONValue
        let jobId: JSONValue
        let since: ContinuousClock.Instant
    }

    let store: JobStore
    let logger: Logger
    let leases: LeaseKeeper
    let interval: Duration
    let giveUpAfter: Duration
    private var progress: [String: ProgressUpdate] = [:]
    private var releases: [Release] = []
    private var successes: [Success] = []
    /// What waits for a job's lock release: by lease token.
    private var afterRelease: [String: [@Sendable () -> Void]] = [:]
    private var urgent = false
    private var flushing = false
    private var flushWaiters: [CheckedContinuation<Void, Never>] = []
    private var failing = false

    /// The most lines a job keeps pending before a flush is due at once.
    static let linesBeforeFlush = 200
    /// The most lines a job keeps pending while the database fails.
    static let maxPendingLines = 5000

    init(store: JobStore, leases: LeaseKeeper, logger: Logger, interval: Duration = .milliseconds(250),
         giveUpAfter: Duration = .seconds(120)) {
        self.store = store
        self.leases = leases
        self.logger = logger
        self.interval = interval
        self.giveUpAfter = giveUpAfter
    }

    /// Queues a log line of `job` (cut to `LogBatcher.maxStoredLine`).
    func add(_ job: ClaimedJob, _ line: String) {
        var u = progress[job.token] ?? ProgressUpdate(job: job)
        u.lines.append(LogBatcher.capped(line))
        if u.lines.count >= Self.linesBeforeFlush { urgent = true }
        progress[job.token] = u
    }

    /// Records that `job` entered `stage` (a later stage before the next flush supersedes it).
    func stage(_ job: ClaimedJob, _ stage: JobStage) {
        var u = progress[job.token] ?? ProgressUpdate(job: job)
        u.stage = stage
        progress[job.token] = u
    }

    /// The lines of `job` not yet written, for its outcome's write, after any
    /// flush under way; the job has nothing pending afterwards. Also how long
    /// that wait took.
    func takeLines(_ job: ClaimedJob) async -> (lines: [String], waited: Duration) {
        let start = ContinuousClock.now
        while flushing { await waitForFlush() }
        return (progress.removeValue(forKey: job.token)?.lines ?? [], ContinuousClock.now - start)
    }

    /// Queues the release of `job`'s project lock (its outcome is written).
    func release(_ job: ClaimedJob, projectId: JSONValue) {
        releases.append(Release(job: job, projectId: projectId, since: .now))
    }

    /// Runs `body` once `job`'s project lock is released (or given up): at
    /// once when no release of it is queued.
    func whenReleased(_ job: ClaimedJob, _ body: @escaping @Sendable () -> Void) {
        guard releases.contains(where: { $0.job.token == job.token }) else { return body() }
        afterRelease[job.token, default: []].append(body)
    }

    /// Queues the project's success record (`lastUpdated`, `jobIds`).
    func recordSuccess(projectDocumentId: JSONValue, jobId: JSONValue) {
        successes.append(Success(projectDocumentId: projectDocumentId, jobId: jobId, since: .now))
    }

    private var hasWork: Bool {
        !releases.isEmpty || !successes.isEmpty || progress.values.contains { !$0.isEmpty }
    }

    /// Flushes every `interval` while something waits (at once when urgent)
    /// until `stopped()`. What is left then is `drain`'s.
    func run(until stopped: @Sendable () -> Bool) async {
        var last = ContinuousClock.now
        while !stopped() {
            try? await Task.sleep(for: .milliseconds(25))
            if urgent || (hasWork && ContinuousClock.now - last >= interval) {
                last = .now
                await flush()
            }
        }
    }

    /// Writes everything pending, retrying while the database fails (up to
    /// `giveUpAfter`): the supervisor's last act. Call it from a task that
    /// is not cancelled (its pauses between retries are sleeps).
    func drain() async {
        let start = ContinuousClock.now
        while hasWork, ContinuousClock.now - start < giveUpAfter {
            await flush()
            if failing { try? await Task.sleep(for: .milliseconds(500)) }
        }
    }

    /// One flush: at most one request per kind of write.
    func flush() async {
        while flushing { await waitForFlush() }
        flushing = true
        urgent = false
        defer {
            flushing = false
            let waiters = flushWaiters
            flushWaiters = []
            for w in waiters { w.resume() }
        }
        var failed = false
        // Progress: what each job has pending now (its entry stays, emptied).
        let batch = progress.values.filter { !$0.isEmpty }
        for u in batch { progress[u.job.token] = ProgressUpdate(job: u.job) }
        do {
            if try await store.writeProgress(batch) < batch.count { leases.verifySoon() }
        } catch where DatabaseRetry.isOutage(error) {
            failed = true
            report(error)
            for u in batch { restore(u) }
        } catch {
            // A rejection fails the same way again (and the batch's other statements were written).
            logger.warning("the database rejected a batched progress write; its lines are lost",
                           metadata: DatabaseRetry.metadata(error))
        }
        // Lock releases, after the outcomes that queued them.
        let rel = releases
        releases = []
        do {
            try await store.releaseProjectLocks(rel.map { ($0.job, $0.projectId) })
            for r in rel { released(r.job) }
        } catch {
            let outage = DatabaseRetry.isOutage(error)
            failed = failed || outage
            report(error)
            for r in rel {
                if outage, ContinuousClock.now - r.since < giveUpAfter { releases.append(r); continue }
                logger.warning("the project lock was not released; the project's next job waits until its lease lapses",
                               metadata: ["job": "\(r.job.idText)"])
                released(r.job)
            }
        }
        let succ = successes
        successes = []
        do {
            try await store.recordSuccesses(succ.map { ($0.projectDocumentId, $0.jobId) })
        } catch {
            let outage = DatabaseRetry.isOutage(error)
            failed = failed || outage
            report(error)
            for s in succ {
                if outage, ContinuousClock.now - s.since < giveUpAfter { successes.append(s); continue }
                var metadata = DatabaseRetry.metadata(error)
                metadata["job"] = "\(JobStore.idText(s.jobId))"
                logger.warning("the job is recorded done, but the project's lastUpdated and jobIds were not updated",
                               metadata: metadata)
            }
        }
        if failing, !failed { logger.notice("batched writes recorded again") }
        failing = failed
    }

    private func waitForFlush() async {
        await withCheckedContinuation { flushWaiters.append($0) }
    }

    private func released(_ job: ClaimedJob) {
        for body in afterRelease.removeValue(forKey: job.token) ?? [] { body() }
    }

    /// Puts a failed write's progress back in front of what came since.
    private func restore(_ u: ProgressUpdate) {
        guard var now = progress[u.job.token] else { return }
        now.stage = now.stage ?? u.stage
        now.lines = u.lines + now.lines
        if now.lines.count > Self.maxPendingLines {
            let dropped = now.lines.count - Self.maxPendingLines
            now.lines.removeFirst(dropped)
            now.lines[0] = "[\(dropped) log lines dropped while the database was unavailable]"
        }
        progress[u.job.token] = now
    }

    private func report(_ error: Error) {
        if !failing, DatabaseRetry.isOutage(error) {
            logger.warning("batched writes failed; will retry", metadata: DatabaseRetry.metadata(error))
        }
    }
}
