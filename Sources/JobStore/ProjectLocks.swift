import Foundation
import RunnerCore

/// One job per project at a time, across every supervisor: a lease-style lock
/// document per project in `project_locks` (`_id` = the project id), held by
/// the job's lease token, extended by its heartbeat, released at its end.
/// A job that finds its project busy is deferred (not counted as an attempt)
/// and woken when the lock is released, so nothing spins. A deferred job
/// marks the lock `waiters: true`, so a release wakes the project's jobs
/// only when some wait (one delete otherwise).
extension JobStore {

    /// Projects whose lock is live now (the claim skips their jobs).
    public func busyProjects(now: Date = Date()) async throws -> [JSONValue] {
        let filter: JSONValue = ["expiresAt": ["$gt": .date(now)]]
        return try await pool.run(locksName) { coll in
            try CollectionOps.find(coll, filter: filter, projection: ["_id": 1]).compactMap { $0["_id"] }
        }
    }

    /// Takes the project's lock for `job`. False when another live job holds it.
    public func acquireProjectLock(_ job: ClaimedJob, projectId: JSONValue, leaseSeconds: Int) async throws -> Bool {
        let now = Date()
        let query: JSONValue = ["_id": projectId, "$or": [["expiresAt": ["$lt": .date(now)]], ["token": .string(job.token)]]]
        let update: JSONValue = ["$set": ["token": .string(job.token), "jobId": job.id,
                                          "expiresAt": .date(now.addingTimeInterval(Double(leaseSeconds)))]]
        do {
            return try await pool.run(locksName) { coll in
                try CollectionOps.findAndModify(coll, query: query, sortJSON: nil, update: update, upsert: true)
            } != nil
        } catch let e as MongoError where e.isDuplicateKey {
            return false
        }
    }

    /// Releases one lock as the supervisor's batched flush does
    /// (`releaseUnwaitedLocks`, then `releaseWaitedLock` if someone waits).
    public func releaseProjectLock(_ job: ClaimedJob, projectId: JSONValue) async throws {
        if try await releaseUnwaitedLocks([(job, projectId)]).contains(job.token) {
            try await releaseWaitedLock(job, projectId: projectId)
        }
    }

    /// Puts a claimed job back because its project is busy: pending, the
    /// attempt not counted, due again when the lock's lease would have lapsed
    /// (or at once when the holder releases it).
    public func deferForProject(_ job: ClaimedJob, leaseSeconds: Int) async throws -> Bool {
        let now = Date()
        let update: JSONValue = [
            "$set": ["status": JobStatus.pending.json, "waitingForProject": true, "updatedAt": .date(now),
                     "notBefore": .date(now.addingTimeInterval(Double(leaseSeconds)))],
            "$inc": ["attempts": -1],
            "$unset": ["lease": "", "stage": ""],
        ]
        let filter: JSONValue = ["_id": job.id, "lease.token": .string(job.token)]
        let deferred = try await pool.run(jobsName) { try CollectionOps.update($0, filter: filter, update: update) } == 1
        // Tell the holder someone waits: mark its live lock. The holder may
        // have released the lock between our failed acquire and the write
        // above (its release then woke nobody): with no live lock to mark,
        // wake the project's waiting jobs ourselves. A release after the mark
        // sees it and wakes them, after our write, so no job is left asleep.
        if deferred, let projectId = job.projectId, !projectId.isNull {
            let live: JSONValue = ["_id": projectId, "expiresAt": ["$gt": .date(Date())]]
            let mark: JSONValue = ["$set": ["waiters": true]]
            let marked = try await pool.run(locksName) { try CollectionOps.update($0, filter: live, update: mark) }
            if marked == 0 { try await wakeDeferred(projectId: projectId) }
        }
        return deferred
    }

    /// Makes a project's jobs that wait for its lock due at once.
    func wakeDeferred(projectId: JSONValue) async throws {
        let wake: JSONValue = ["$unset": ["notBefore": "", "waitingForProject": ""]]
        // One update per name of the reference, each on its own index.
        for name in DocumentFields.projectRef {
            let waiting: JSONValue = [name: projectId, "status": JobStatus.pending.json, "waitingForProject": true]
            _ = try await pool.run(jobsName) { try CollectionOps.update($0, filter: waiting, update: wake, many: true) }
        }
    }

    /// Ends pending jobs whose cancellation was requested directly in the
    /// database (the web app sets `cancelRequested`). Returns how many.
    @discardableResult
    public func sweepCancelledPending() async throws -> Int {
        let now = JSONValue.date(Date())
        let filter: JSONValue = ["status": JobStatus.pending.json, "cancelRequested": true]
        let update: JSONValue = ["$set": ["status": JobStatus.cancelled.json, "stage": "finished", "finishedAt": now, "updatedAt": now],
                                 "$push": ["logs": "cancelled before it ran"], "$unset": ["error": ""]]
        return try await pool.run(jobsName) { try CollectionOps.update($0, filter: filter, update: update, many: true) }
    }
}
