import Foundation
import JobStore
import Logging
import RunnerCore

/// The `WriteBatcher`'s flush: one request per kind of write for every job,
/// and what becomes of a write the database did not take (kept for the next
/// flush, given up, or logged once).
extension WriteBatcher {
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

    func waitForFlush() async {
        await withCheckedContinuation { flushWaiters.append($0) }
    }

    /// A release the database did not take: again with the next flush, unless
    /// it was rejected or is older than `giveUpAfter` (the lock then lapses
    /// with its lease).
    func requeue(_ r: Release, _ error: Error) {
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

    func released(_ job: ClaimedJob) {
        releasing.remove(job.token)
        for body in afterRelease.removeValue(forKey: job.token) ?? [] { body() }
    }

    /// A pending entry's lines, with the marker for the dropped ones first.
    static func marked(_ p: Pending) -> [String] {
        guard p.dropped > 0 else { return p.update.lines }
        return ["[\(p.dropped) log lines dropped: more were pending than the log keeps]"] + p.update.lines
    }

    /// Keeps at most the log's `logCap` lines and `maxPendingBytes` pending,
    /// dropping the oldest (counted in `dropped`).
    func trim(_ p: inout Pending) {
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
    func restore(_ p: Pending) {
        guard var now = progress[p.update.job.token] else { return }
        now.update.stage = now.update.stage ?? p.update.stage
        now.update.lines = p.update.lines + now.update.lines
        now.bytes += p.bytes
        now.dropped += p.dropped
        trim(&now)
        progress[p.update.job.token] = now
    }
}
