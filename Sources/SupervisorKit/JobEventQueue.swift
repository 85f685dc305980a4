import Foundation
import JobStore
import RunnerCore

/// Each running job's event stream on its way to `job_events`, kept by the
/// `WriteBatcher` (which flushes it with the logs): the job-wide numbering
/// (`seq`, from where the job's earlier attempts stopped), the cap
/// (JOB_EVENTS_MAX, the last event a `truncated` marker), and what waits
/// for the next flush, bounded in bytes. The supervisor does not trust the
/// child's bounds: every event is redacted and bounded again before this.
struct JobEventQueue {
    struct Stream {
        let job: ClaimedJob
        /// The last `seq` given.
        var last: Int
        var pending: [JobEvent] = []
        /// When the oldest pending event was queued.
        var since: ContinuousClock.Instant?
        var bytes = 0
        /// Events dropped because the database did not take them in time.
        var dropped = 0
        /// Where the numbering continues is not known (the last stored `seq`
        /// could not be read): nothing is numbered, queued or written.
        var skipped = false
    }
    private var streams: [String: Stream] = [:]
    /// JOB_EVENTS_MAX.
    let max: Int

    /// The most bytes of events one job keeps pending (a database outage).
    static let maxPendingBytes = 8 << 20
    /// The events a job has pending that make a flush due at once.
    static let eventsBeforeFlush = 200

    init(max: Int) { self.max = max }

    /// Where `job`'s numbering continues: after `last` (its earlier
    /// attempts' last `seq`); nil: not known, so the stream is skipped (its
    /// events would reuse stored numbers).
    mutating func start(_ job: ClaimedJob, after last: Int?) {
        var s = streams[job.token] ?? Stream(job: job, last: last ?? 0)
        if let last { s.last = Swift.max(s.last, last) } else { s.skipped = true }
        streams[job.token] = s
    }

    /// Numbers and queues `event` of `job` (nothing past the cap, nothing
    /// for a stream not started or skipped); true when the job's pending
    /// events make a flush due.
    mutating func add(_ job: ClaimedJob, _ event: JobEvent) -> Bool {
        guard var s = streams[job.token], !s.skipped else { return false }
        defer { streams[job.token] = s }
        guard s.last < max else { return false }
        var e = event
        if s.dropped > 0, s.bytes < Self.maxPendingBytes / 2 {
            // Said once the database takes events again.
            let note = JobEvent.error(source: "runner", message: "\(s.dropped) event(s) dropped: the database did not take them in time")
            s.dropped = 0
            append(&s, note)
            guard s.last < max else { return true }
        }
        let size = e.encodedSize
        guard s.bytes + size <= Self.maxPendingBytes else {
            s.dropped += 1
            return true
        }
        if s.last + 1 == max { e = .truncated(max: max) }
        append(&s, e)
        return s.isUrgent
    }

    private func append(_ s: inout Stream, _ event: JobEvent) {
        var e = event
        s.last += 1
        e.seq = s.last
        e.attempt = s.job.attempt
        s.bytes += e.encodedSize
        s.pending.append(e)
        if s.since == nil { s.since = .now }
    }

    /// Whether some job has events due for a flush: queued at least `age`
    /// ago, or enough of them to flush at once.
    func hasDue(olderThan age: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        streams.values.contains { $0.isDue(age, now) }
    }

    /// Every job's events due (`hasDue`), for one flush (the jobs' streams stay).
    /// A job that ends sooner than `age` has its events written once, with its outcome.
    mutating func takePending(olderThan age: Duration, now: ContinuousClock.Instant = .now) -> [(job: ClaimedJob, events: [JobEvent])] {
        var out: [(job: ClaimedJob, events: [JobEvent])] = []
        for (token, var s) in streams where s.isDue(age, now) {
            out.append((s.job, s.pending))
            s.pending = []
            s.bytes = 0
            s.since = nil
            streams[token] = s
        }
        return out
    }

    /// Puts a flush's events back in front of what came since (the database was down).
    mutating func restore(_ batch: [(job: ClaimedJob, events: [JobEvent])]) {
        for (job, events) in batch {
            guard var s = streams[job.token] else { continue }
            s.pending = events + s.pending
            s.bytes = s.pending.reduce(0) { $0 + $1.encodedSize }
            s.since = .now - .seconds(3600)
            streams[job.token] = s
        }
    }

    /// The job's pending events and its last `seq`, for its outcome's write
    /// (nil: none to record: the stream was not started, or skipped); its stream ends.
    mutating func finish(_ job: ClaimedJob) -> (events: [JobEvent], last: Int?) {
        guard let s = streams.removeValue(forKey: job.token), !s.skipped else { return ([], nil) }
        return (s.pending, s.last)
    }
}

extension JobEventQueue.Stream {
    var isUrgent: Bool { pending.count >= JobEventQueue.eventsBeforeFlush || bytes >= JobEventQueue.maxPendingBytes / 2 }

    func isDue(_ age: Duration, _ now: ContinuousClock.Instant) -> Bool {
        guard let since, !pending.isEmpty else { return false }
        return isUrgent || now - since >= age
    }
}
