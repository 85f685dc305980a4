import Foundation
import JobStore
import Logging
import RunnerCore

/// Writes a job's decided outcome (`OutcomePolicy`) to the database, and
/// keeps or removes its workspace by KEEP_WORKSPACES.
struct OutcomeWriter: Sendable {
    let store: JobStore
    let writes: WriteBatcher
    let keepWorkspaces: KeepWorkspaces

    /// Records the outcome with the job's last log lines, retrying through a
    /// database outage (capped backoff, up to 15 minutes; the write stays
    /// fenced, so a lease that lapsed meanwhile makes it a no-op), then
    /// queues the project lock's release and, for a success, the project's
    /// record (`projectDocumentId`: its `_id` as the ticket read it) for the
    /// supervisor's next batched flush. A rejection by the server is logged
    /// as such, never as an outage.
    func write(_ job: ClaimedJob, _ outcome: JobOutcome, _ logger: Logger, logs: [String] = [],
               projectDocumentId: JSONValue? = nil, usage: UsageTotals? = nil, checkpoint: CheckpointInfo? = nil) async {
        // Lines still pending (a run that ended before its relay) go with the outcome.
        let lines = logs + (await writes.takeLines(job)).lines
        // The stream's last events, its end marked, stored before the outcome (one request).
        await writes.event(job, Self.finishedEvent(outcome).bounded)
        let (events, eventSeq) = await writes.takeEvents(job)
        do {
            try await DatabaseRetry.run("writing the job's events", giveUpAfter: .seconds(60), logger: logger) {
                try await store.insertEvents([(job.id, events)])
            }
        } catch {
            logger.warning("the job's last events were not stored", metadata: DatabaseRetry.metadata(error))
        }
        var written = false
        do {
            do {
                written = try await DatabaseRetry.run("writing the outcome", giveUpAfter: .seconds(900), logger: logger) {
                    try await store.finish(job, outcome, logs: lines, usage: usage?.json, checkpoint: checkpoint?.json,
                                           eventSeq: eventSeq)
                }
            } catch let error as MongoError where error.isDocumentTooLarge && !lines.isEmpty {
                // The job document (or this write) is too large: the outcome matters more than its lines.
                var metadata = DatabaseRetry.metadata(error)
                metadata["droppedLines"] = "\(lines.count)"
                logger.error("the database rejected the outcome write as too large; writing the outcome without its log lines",
                             metadata: metadata)
                written = try await DatabaseRetry.run("writing the outcome", giveUpAfter: .seconds(900), logger: logger) {
                    try await store.finish(job, outcome, logs: [], usage: usage?.json, checkpoint: checkpoint?.json,
                                           eventSeq: eventSeq)
                }
            }
        } catch {
            let what = DatabaseRetry.isOutage(error) ? "cannot record the outcome" : "the database rejected the outcome write"
            logger.error("\(what); the lease will expire and the job be retried", metadata: DatabaseRetry.metadata(error))
            return
        }
        guard written else {
            logger.warning("lease lost before the outcome was written; another runner owns the job")
            return
        }
        Self.report(outcome, logger)
        // The lock's release and the project's record go with the supervisor's next batched flush.
        guard let p = job.projectId, !p.isNull else { return }
        await writes.release(job, projectId: p)
        if case .done = outcome, let projectDocumentId {
            await writes.recordSuccess(projectDocumentId: projectDocumentId, jobId: job.id)
        }
    }

    /// The stream's last event: stage `finished` with the attempt's outcome.
    static func finishedEvent(_ outcome: JobOutcome) -> JobEvent {
        switch outcome {
        case .done: .stage(.finished, status: JobStatus.done.rawValue)
        case .failed(let f): .stage(.finished, status: JobStatus.failed.rawValue, code: f.code.rawValue, message: f.message)
        case .retry(let f, _): .stage(.finished, status: JobStatus.pending.rawValue, code: f.code.rawValue, message: f.message)
        case .cancelled(let why): .stage(.finished, status: JobStatus.cancelled.rawValue, message: why)
        case .requeued: .stage(.finished, status: JobStatus.pending.rawValue, message: "requeued for another runner")
        }
    }

    /// The written outcome's metric and log line.
    static func report(_ outcome: JobOutcome, _ logger: Logger) {
        switch outcome {
        case .done(let meta):
            RunnerMetrics.finished(status: "done", code: "")
            logger.info("done", metadata: ["commit": "\(meta.commitSha ?? "-")"])
        case .failed(let f):
            RunnerMetrics.finished(status: "failed", code: f.code.rawValue)
            logger.warning("failed", metadata: ["code": "\(f.code.rawValue)", "error": "\(f.message)"])
        case .retry(let f, let at):
            RunnerMetrics.finished(status: "retry", code: f.code.rawValue)
            logger.warning("will retry", metadata: ["code": "\(f.code.rawValue)", "at": "\(at)"])
        case .cancelled:
            RunnerMetrics.finished(status: "cancelled", code: "")
            logger.info("cancelled")
        case .requeued:
            RunnerMetrics.finished(status: "requeued", code: "")
            logger.info("requeued for another runner")
        }
    }

    /// Keeps or removes the job's workspace, by KEEP_WORKSPACES and the
    /// outcome (`failed`: kept unless the job is done or requeued; a lost
    /// lease, nil, keeps it too). Blocking: off the cooperative pool.
    func retainWorkspace(_ path: String, outcome: JobOutcome?, logger: Logger) async {
        guard !Self.keepsWorkspace(keepWorkspaces, outcome: outcome) else { return }
        _ = try? await onDedicatedThread { Self.removeWorkspace(path, logger: logger) }
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
