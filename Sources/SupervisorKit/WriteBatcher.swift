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
    struct Pending {
        var update: ProgressUpdate
        var bytes = 0
        var dropped = 0
        init(_ job: ClaimedJob) { update = ProgressUpdate(job: job) }
        var isEmpty: Bool { update.isEmpty && dropped == 0 }
    }
    struct Release {
        let job: ClaimedJob
        let projectId: JSONValue
        let since: ContinuousClock.Instant
        /// The lock had waiters: it needs its own release and the wake-up.
        var waited = false
    }
    struct Success {
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
    var progress: [String: Pending] = [:]
    /// Each running job's log budget, by lease token (dropped with its last lines).
    var budgets: [String: LogBudget] = [:]
    var releases: [Release] = []
    /// Jobs whose lock release is queued or being written (by lease token).
    var releasing: Set<String> = []
    var successes: [Success] = []
    /// What waits for a job's lock release: by lease token.
    var afterRelease: [String: [@Sendable () -> Void]] = [:]
    var urgent = false
    var flushing = false
    var flushWaiters: [CheckedContinuation<Void, Never>] = []
    var failing = false
    /// The supervisor's last flushes: every pending event goes, however young.
    var draining = false
    /// Each running job's event stream (`JobEventQueue`): flushed with the logs, in one request for all jobs.
    var events: JobEventQueue

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

    var hasWork: Bool { hasProjectWork || hasProgress }
    var hasProjectWork: Bool { !releases.isEmpty || !successes.isEmpty }
    var hasProgress: Bool { progress.values.contains { !$0.isEmpty } || events.hasDue(olderThan: draining ? .zero : eventsInterval) }
    /// How long a running job's events may wait: longer than its progress,
    /// so that a short job's whole stream is one insert, with its outcome.
    var eventsInterval: Duration { max(Self.eventsInterval, progressInterval) }
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
}
