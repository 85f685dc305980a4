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
/// finds pending goes with the outcome. A job's pending lines are bounded
/// (the database keeps only its last `logCap` anyway, and a statement must
/// stay far below 16 MB): past `logCap` lines or `maxPendingBytes` the
/// oldest are dropped, and one marker line says how many. The supervisor
/// does not trust the child's log bounds: each job's lines are cut and
/// counted again here (`LogBudget`: JOB_LOG_LINE_BYTES, JOB_LOG_BYTES). A flush that meets
/// an outage keeps what it held for the next one, at most one a second;
/// releases and success records are given up after `giveUpAfter`, and what
/// the server rejects is logged once, not retried.
actor WriteBatcher {
    /// One job's unwritten progress, and how many of its lines were dropped.
    private struct Pending {
        var update: ProgressUpdate
        var bytes = 0
        var dropped = 0
        init(_ job: ClaimedJob) { update = ProgressUpdate(job: job) }
        var isEmpty: Bool { update.isEmpty && dropped == 0 }
    }
    private struct Release {
        let job: ClaimedJob
        let projectId: JSONValue
        let since: ContinuousClock.Instant
        /// The lock had waiters: it needs its own release and the wake-up.
        var waited = false
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
    /// How long progress may wait (`interval` unless a test stretches it).
    let progressInterval: Duration
    let giveUpAfter: Duration
    /// The log's byte bounds, applied again to what the child sent.
    let logBounds: LogBounds
    private var progress: [String: Pending] = [:]
    /// Each running job's log budget, by lease token (dropped with its last lines).
    private var budgets: [String: LogBudget] = [:]
    private var releases: [Release] = []
    /// Jobs whose lock release is queued or being written (by lease token).
    private var releasing: Set<String> = []
    private var successes: [Success] = []
    /// What waits for a job's lock release: by lease token.
    private var afterRelease: [String: [@Sendable () -> Void]] = [:]
    private var urgent = false
    private var flushing = false
    private var flushWaiters: [CheckedContinuation<Void, Never>] = []
    private var failing = false
    /// The supervisor's last flushes: every pending event goes, however young.
    private var draining = false
    /// Each running job's event stream (`JobEventQueue`): flushed with the logs, in one request for all jobs.
    private var events: JobEventQueue

    /// The lines a job has pending that make a flush due at once.
    static let linesBeforeFlush = 200
    /// The most bytes of lines a job keeps pending (one statement carries them).
    static let maxPendingBytes = 4 << 20
    /// How long the supervisor's last flush may retry an outage at exit
    /// (within systemd's stop timeout after the shutdown grace).
    static let drainBudget = Duration.seconds(20)

    init(store: JobStore, leases: LeaseKeeper, logger: Logger, interval: Duration = .milliseconds(250),
         progressInterval: Duration? = nil, giveUpAfter: Duration = .seconds(120), logBounds: LogBounds = LogBounds(),
         eventsMax: Int = ChildSettings.defaultEventsMax) {
        self.store = store
        events = JobEventQueue(max: eventsMax)
        self.logBounds = logBounds
        self.leases = leases
        self.logger = logger
        self.interval = interval
        self.progressInterval = progressInterval ?? interval
        self.giveUpAfter = giveUpAfter
    }

    /// Queues a log line of `job`, within the job's `LogBudget`; `own`: the
    /// supervisor's own line, only cut to the line bound.
    func add(_ job: ClaimedJob, _ line: String, own: Bool = false) {
        let kept: String
        if own {
            kept = logBounds.line(line)
        } else {
            var budget = budgets[job.token] ?? LogBudget(logBounds)
            let admitted = budget.admit(line)
            budgets[job.token] = budget
            guard let admitted else { return }
            kept = admitted
        }
        var p = progress[job.token] ?? Pending(job)
        p.update.lines.append(kept)
        p.bytes += kept.utf8.count
        trim(&p)
        if p.update.lines.count >= Self.linesBeforeFlush { urgent = true }
        progress[job.token] = p
    }

    /// Queues an event of `job` (numbered here; redacted and bounded by the caller).
    func event(_ job: ClaimedJob, _ event: JobEvent) {
        if events.add(job, event) { urgent = true }
    }

    /// Starts `job`'s event stream (before any of its events): after its
    /// last outcome's `eventSeq`, or, for a later attempt (whose predecessor
    /// may have ended without an outcome), after the last event stored (one
    /// read, retried through an outage for up to 30 s). When that read fails,
    /// the attempt's events are not stored at all: numbered from a stale
    /// `eventSeq` they would reuse stored numbers.
    func startEvents(_ job: ClaimedJob) async {
        var last: Int? = job.job.eventSeq
        if job.attempt > 1 {
            do {
                let store = store
                let read: @Sendable () async throws -> Int = { try await store.lastEventSeq(job.id) }
                let stored = try await DatabaseRetry.run("reading the job's last event", giveUpAfter: .seconds(30),
                                                         logger: logger, read)
                last = max(job.job.eventSeq, stored)
            } catch {
                var metadata = DatabaseRetry.metadata(error)
                metadata["job"] = "\(job.idText)"
                logger.warning("the job's last stored event could not be read; this attempt's events are not stored",
                               metadata: metadata)
                last = nil
            }
        }
        events.start(job, after: last)
    }

    /// The events of `job` not yet written and its stream's last `seq` (nil:
    /// none to record), for its outcome's write (after `takeLines`); its stream ends.
    func takeEvents(_ job: ClaimedJob) async -> (events: [JobEvent], last: Int?) {
        // A flush under way may hold some of them: they are stored before the outcome's.
        while flushing { await waitForFlush() }
        return events.finish(job)
    }

    /// Records that `job` entered `stage` (a later stage before the next flush supersedes it).
    func stage(_ job: ClaimedJob, _ stage: JobStage) {
        var p = progress[job.token] ?? Pending(job)
        p.update.stage = stage
        progress[job.token] = p
    }

    /// The lines of `job` not yet written, for its outcome's write, after any
    /// flush under way; the job has nothing pending afterwards. Also how long
    /// that wait took.
    func takeLines(_ job: ClaimedJob) async -> (lines: [String], waited: Duration) {
        let start = ContinuousClock.now
        while flushing { await waitForFlush() }
        budgets[job.token] = nil
        guard let p = progress.removeValue(forKey: job.token) else { return ([], ContinuousClock.now - start) }
        return (Self.marked(p), ContinuousClock.now - start)
    }

    /// Queues the release of `job`'s project lock (its outcome is written).
    func release(_ job: ClaimedJob, projectId: JSONValue) {
        releases.append(Release(job: job, projectId: projectId, since: .now))
        releasing.insert(job.token)
    }

    /// Runs `body` once `job`'s project lock is released (or given up): at
    /// once when no release of it is queued or being written.
    func whenReleased(_ job: ClaimedJob, _ body: @escaping @Sendable () -> Void) {
        guard releasing.contains(job.token) else { return body() }
        afterRelease[job.token, default: []].append(body)
    }

    /// Queues the project's success record (`lastUpdated`, `jobIds`).
    func recordSuccess(projectDocumentId: JSONValue, jobId: JSONValue) {
        successes.append(Success(projectDocumentId: projectDocumentId, jobId: jobId, since: .now))
    }

    private var hasWork: Bool { hasProjectWork || hasProgress }
    private var hasProjectWork: Bool { !releases.isEmpty || !successes.isEmpty }
    private var hasProgress: Bool { progress.values.contains { !$0.isEmpty } || events.hasDue(olderThan: draining ? .zero : eventsInterval) }
    /// How long a running job's events may wait: longer than its progress,
    /// so that a short job's whole stream is one insert, with its outcome.
    private var eventsInterval: Duration { max(Self.eventsInterval, progressInterval) }
    /// `eventsInterval`'s least.
    static let eventsInterval = Duration.seconds(1)

    /// Flushes every `interval` while something waits (at once when a job has
    /// `linesBeforeFlush` lines; at most once a second while the database
    /// fails) until `stopped()`. What is left then is `drain`'s.
    func run(until stopped: @Sendable () -> Bool) async {
        var last = ContinuousClock.now
        while !stopped() {
            try? await Task.sleep(for: .milliseconds(hasWork ? 25 : 100))
            let since = ContinuousClock.now - last
            let due = failing ? hasWork && since >= .seconds(1)
                : urgent || (hasProjectWork && since >= interval) || (hasProgress && since >= progressInterval)
            if due {
                last = .now
                await flush()
            }
        }
    }

    /// Writes everything pending, retrying an outage for up to
    /// `drainBudget`: the supervisor's last act. Call it from a task that is
    /// not cancelled (its pauses between retries are sleeps).
    func drain() async {
        draining = true
        let start = ContinuousClock.now
        while hasWork, ContinuousClock.now - start < Self.drainBudget {
            await flush()
            if failing { try? await Task.sleep(for: .milliseconds(500)) }
        }
        guard hasWork else { return }
        logger.error("exiting with writes the database did not take", metadata: [
            "lockReleases": "\(releases.count)", "projectRecords": "\(successes.count)",
            "jobsWithProgress": "\(progress.values.filter { !$0.isEmpty }.count)"])
        for r in releases { released(r.job) }
    }

    /// One flush: at most one request per kind of write (a lock someone
    /// waits for costs its own release and wake-up).
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
        var outage: Error?
        var rejection: Error?
        func failed(_ error: Error) {
            if DatabaseRetry.isOutage(error) { outage = outage ?? error } else { rejection = rejection ?? error }
        }
        // Events first: a job's change (its progress) then finds them stored.
        let eventBatch = events.takePending(olderThan: draining ? .zero : eventsInterval)
        do {
            try await store.insertEvents(eventBatch.map { ($0.job.id, $0.events) })
        } catch {
            failed(error)
            if DatabaseRetry.isOutage(error) { events.restore(eventBatch) }
        }
        // Progress: what each job has pending now (its entry stays, emptied).
        let batch = progress.values.filter { !$0.isEmpty }
        for p in batch { progress[p.update.job.token] = Pending(p.update.job) }
        let updates = batch.map { p in
            ProgressUpdate(job: p.update.job, stage: p.update.stage, lines: Self.marked(p))
        }
        do {
            if try await store.writeProgress(updates) < updates.count { leases.verifySoon() }
        } catch {
            failed(error)
            // A rejection fails the same way again (and the batch's other statements were written).
            if DatabaseRetry.isOutage(error) { for p in batch { restore(p) } }
        }
        // Lock releases, after the outcomes that queued them.
        let rel = releases
        releases = []
        var waited = rel.filter(\.waited)
        let fresh = rel.filter { !$0.waited }
        do {
            let left = try await store.releaseUnwaitedLocks(fresh.map { ($0.job, $0.projectId) })
            for var r in fresh {
                if left.contains(r.job.token) { r.waited = true; waited.append(r) } else { released(r.job) }
            }
        } catch {
            failed(error)
            for r in fresh { requeue(r, error) }
        }
        for r in waited {
            do {
                try await store.releaseWaitedLock(r.job, projectId: r.projectId)
                released(r.job)
            } catch {
                failed(error)
                requeue(r, error)
            }
        }
        let succ = successes
        successes = []
        do {
            try await store.recordSuccesses(succ.map { ($0.projectDocumentId, $0.jobId) })
        } catch {
            failed(error)
            for s in succ {
                if DatabaseRetry.isOutage(error), ContinuousClock.now - s.since < giveUpAfter { successes.append(s); continue }
                var metadata = DatabaseRetry.metadata(error)
                metadata["job"] = "\(JobStore.idText(s.jobId))"
                logger.warning("the job is recorded done, but the project's lastUpdated and jobIds were not updated",
                               metadata: metadata)
            }
        }
        let problem = outage ?? rejection
        if let problem, !failing {
            logger.warning(outage != nil ? "batched writes failed; will retry" : "the database rejected a batched write",
                           metadata: DatabaseRetry.metadata(problem))
        } else if problem == nil, failing {
            logger.notice("batched writes recorded again")
        }
        failing = problem != nil
    }

    private func waitForFlush() async {
        await withCheckedContinuation { flushWaiters.append($0) }
    }

    /// A release the database did not take: again with the next flush, unless
    /// it was rejected or is older than `giveUpAfter` (the lock then lapses
    /// with its lease).
    private func requeue(_ r: Release, _ error: Error) {
        if DatabaseRetry.isOutage(error), ContinuousClock.now - r.since < giveUpAfter {
            releases.append(r)
            return
        }
        var metadata = DatabaseRetry.metadata(error)
        metadata["job"] = "\(r.job.idText)"
        logger.warning("the project lock was not released; the project's next job waits until its lease lapses",
                       metadata: metadata)
        released(r.job)
    }

    private func released(_ job: ClaimedJob) {
        releasing.remove(job.token)
        for body in afterRelease.removeValue(forKey: job.token) ?? [] { body() }
    }

    /// A pending entry's lines, with the marker for the dropped ones first.
    private static func marked(_ p: Pending) -> [String] {
        guard p.dropped > 0 else { return p.update.lines }
        return ["[\(p.dropped) log lines dropped: more were pending than the log keeps]"] + p.update.lines
    }

    /// Keeps at most the log's `logCap` lines and `maxPendingBytes` pending,
    /// dropping the oldest (counted in `dropped`).
    private func trim(_ p: inout Pending) {
        var drop = max(0, p.update.lines.count - store.logCap)
        var bytes = p.bytes
        for line in p.update.lines.prefix(drop) { bytes -= line.utf8.count }
        while bytes > Self.maxPendingBytes, drop < p.update.lines.count {
            bytes -= p.update.lines[drop].utf8.count
            drop += 1
        }
        guard drop > 0 else { return }
        p.update.lines.removeFirst(drop)
        p.bytes = bytes
        p.dropped += drop
    }

    /// Puts a failed write's progress back in front of what came since.
    private func restore(_ p: Pending) {
        guard var now = progress[p.update.job.token] else { return }
        now.update.stage = now.update.stage ?? p.update.stage
        now.update.lines = p.update.lines + now.update.lines
        now.bytes += p.bytes
        now.dropped += p.dropped
        trim(&now)
        progress[p.update.job.token] = now
    }
}
