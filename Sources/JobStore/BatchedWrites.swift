import Foundation
import RunnerCore

/// What a job's relay has to record since its last write: the stage it
/// entered, if that changed, and the log lines printed since.
public struct ProgressUpdate: Sendable {
    public let job: ClaimedJob
    public var stage: JobStage?
    public var lines: [String]

    public init(job: ClaimedJob, stage: JobStage? = nil, lines: [String] = []) {
        self.job = job
        self.stage = stage
        self.lines = lines
    }

    public var isEmpty: Bool { stage == nil && lines.isEmpty }
}

/// The writes a supervisor batches across the jobs it runs (issue 15): each
/// call is one request, however many jobs it covers (a bulk write of one
/// statement per job, every statement fenced as the single write was).
extension JobStore {
    /// Records several jobs' progress: per job one updateOne fenced on its
    /// lease, setting the stage and appending the lines (capped to the last
    /// `logCap`). Returns how many jobs matched: fewer than `updates.count`
    /// means a lease was lost (which one, the lease read tells).
    public func writeProgress(_ updates: [ProgressUpdate]) async throws -> Int {
        let statements: [(filter: JSONValue, update: JSONValue)] = updates.filter { !$0.isEmpty }.map { u in
            var set: [String: JSONValue] = ["updatedAt": .date(Date())]
            if let stage = u.stage { set["stage"] = .string(stage.rawValue) }
            var fields: [String: JSONValue] = ["$set": .object(set)]
            if !u.lines.isEmpty { fields["$push"] = pushLogs(u.lines) }
            return (["_id": u.job.id, "lease.token": .string(u.job.token)], .object(fields))
        }
        guard !statements.isEmpty else { return 0 }
        return try await pool.run(jobsName) { try CollectionOps.updateEach($0, statements) }
    }

    /// Deletes, in one request, every lock among `locks` still held by its
    /// job that nobody waits for. Returns the tokens of those still held
    /// afterwards (read only when some were not deleted): the locks marked
    /// `waiters: true`, for `releaseWaitedLock`.
    public func releaseUnwaitedLocks(_ locks: [(job: ClaimedJob, projectId: JSONValue)]) async throws -> Set<String> {
        guard !locks.isEmpty else { return [] }
        let unwaited: [JSONValue] = locks.map {
            ["_id": $0.projectId, "token": .string($0.job.token), "waiters": ["$exists": false]]
        }
        let removed = try await pool.run(locksName) { try CollectionOps.deleteEach($0, unwaited) }
        guard removed < locks.count else { return [] }
        // Some lock had waiters (or was no longer the job's): which ones still are ours.
        let tokens: JSONValue = ["token": ["$in": .array(locks.map { .string($0.job.token) })]]
        let left = try await pool.run(locksName) { coll in
            try CollectionOps.find(coll, filter: tokens, projection: ["token": 1])
        }
        return Set(left.compactMap { $0["token"]?.stringValue })
    }

    /// Releases a lock someone waits for: deletes it (if still the job's),
    /// then wakes the project's deferred jobs. Safe to repeat: a retry after
    /// a failed wake-up deletes nothing and wakes them.
    public func releaseWaitedLock(_ job: ClaimedJob, projectId: JSONValue) async throws {
        let filter: JSONValue = ["_id": projectId, "token": .string(job.token)]
        _ = try await pool.run(locksName) { try CollectionOps.delete($0, filter: filter) }
        try await wakeDeferred(projectId: projectId)
    }

    /// After successful jobs: each one's project (by the `_id` its run read) gets
    /// `lastUpdated` and the job in `jobIds` (`$addToSet`); one request for all.
    public func recordSuccesses(_ successes: [(projectDocumentId: JSONValue, jobId: JSONValue)]) async throws {
        guard !successes.isEmpty else { return }
        let now = JSONValue.date(Date())
        let statements: [(filter: JSONValue, update: JSONValue)] = successes.map {
            (["_id": $0.projectDocumentId], ["$set": ["lastUpdated": now], "$addToSet": ["jobIds": $0.jobId]])
        }
        _ = try await pool.run(projectsName) { try CollectionOps.updateEach($0, statements) }
    }
}
