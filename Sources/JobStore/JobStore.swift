import Foundation
import RunnerCore

/// A job this runner holds the lease of.
public struct ClaimedJob: Sendable {
    /// The document after the claim, decoded once (every alias resolved).
    public let job: Job
    /// The lease token that fences every write of this attempt.
    public let token: String

    /// When the claim was sent: the lease runs LEASE_SECONDS from no later than this.
    public let leaseStart: ContinuousClock.Instant

    public init(document: JSONValue, token: String, leaseStart: ContinuousClock.Instant = .now) {
        job = Job(document)
        self.token = token
        self.leaseStart = leaseStart
    }

    /// `_id` exactly as stored (a string, or `{"$oid": …}`), written back as is.
    public var id: JSONValue { job.id }
    /// The whole document after the claim.
    public var document: JSONValue { job.document }
    public var idText: String { JobStore.idText(id) }
    public var attempt: Int { max(job.attempts, 1) }
    /// The project reference (`projectId` or `project_id`); also the project lock's key.
    public var projectId: JSONValue? { job.projectRef }
    public var cancelRequested: Bool { job.cancelRequested }
}

/// How an attempt ended, as written to the job document.
public enum JobOutcome: Sendable {
    case done(JobMetadata)
    case failed(JobFailure)
    /// A retryable failure: back to `pending` until `notBefore`.
    case retry(JobFailure, notBefore: Date)
    case cancelled(String)
    /// Shutdown: back to `pending` without counting the attempt.
    case requeued
}

/// The jobs and projects collections (docs/contract.md) over libmongoc. Every
/// method is async and runs its blocking calls on the pool's own threads.
public final class JobStore: Sendable {
    public let pool: MongoPool
    public let logCap: Int
    /// Collection names: `jobs`, `projects`, `project_locks` and
    /// `runner_markers` (the change stream's check), each after
    /// `collectionPrefix` (empty, except for `doctor`'s scratch collections).
    public let collectionPrefix: String
    var jobsName: String { collectionPrefix + "jobs" }
    var projectsName: String { collectionPrefix + "projects" }
    var locksName: String { collectionPrefix + "project_locks" }
    var markersName: String { collectionPrefix + "runner_markers" }
    /// The claim order: priority desc, then oldest first (the fallback's sort;
    /// a job with only the app's `created_at` sorts by that).
    static let claimSort = #"{"priority": -1, "createdAt": 1, "created_at": 1}"#

    /// What this process has learned about the queue's shape (ClaimSearch).
    let claimSearch = ClaimSearch()

    public init(pool: MongoPool, logCap: Int, collectionPrefix: String = "") {
        self.pool = pool
        self.logCap = logCap
        self.collectionPrefix = collectionPrefix
    }

    /// The text form of an `_id`: the ObjectId's hex, or the string.
    public static func idText(_ id: JSONValue) -> String {
        id["$oid"]?.stringValue ?? id.stringValue ?? id.jsonString
    }

    /// A filter matching `_id` given as text: the string, or an ObjectId when it looks like one.
    public static func idFilter(_ text: String) -> JSONValue {
        if text.count == 24, text.allSatisfy(\.isHexDigit) {
            return ["_id": ["$in": [["$oid": .string(text.lowercased())], .string(text)]]]
        }
        return ["_id": .string(text)]
    }

    /// Pings the server; returns its version.
    public func ping() async throws -> String {
        _ = try await pool.command(["ping": 1])
        return try await pool.command(["buildInfo": 1])["version"]?.stringValue ?? "unknown"
    }

    /// The names of the indexes `ensureIndexes` creates on `jobs`.
    public static let indexNames = ["claim_order", "claim_order_created_at", "claim_undated", "lease_expiry",
                                    "project_status", "project_id_status", "deferred_due"]

    /// Creates the indexes the claim, the lease recovery and the operator views use.
    public func ensureIndexes() async throws {
        try await pool.run(jobsName) { [jobsName] coll in
            try CollectionOps.writeCommand(coll, """
            {"createIndexes": "\(jobsName)", "indexes": [
              {"key": {"status": 1, "priority": -1, "createdAt": 1}, "name": "claim_order"},
              {"key": {"status": 1, "priority": -1, "created_at": 1}, "name": "claim_order_created_at"},
              {"key": {"status": 1, "priority": -1, "createdAt": 1, "created_at": 1}, "name": "claim_undated"},
              {"key": {"status": 1, "lease.expiresAt": 1}, "name": "lease_expiry"},
              {"key": {"projectId": 1, "status": 1}, "name": "project_status"},
              {"key": {"project_id": 1, "status": 1}, "name": "project_id_status"},
              {"key": {"status": 1, "notBefore": 1}, "name": "deferred_due"}
            ]}
            """)
        }
    }

    /// Atomically claims the next runnable job (docs/contract.md, Statuses): a pending one whose
    /// `notBefore` has passed, or a running one whose lease expired, in the order
    /// `priority desc, createdAt asc`. Jobs of `busyProjects` are skipped (one job
    /// per project at a time). See `ClaimSearch` for how the cost stays flat.
    ///
    /// A lapsed lease counts as an attempt (`LeaseLapse`): a running job whose
    /// lease expired is claimed again only while its `attempts` are below its
    /// `maxAttempts` (else `maxAttempts`, JOB_MAX_ATTEMPTS); at that point it
    /// is failed `lease_lost` instead (one guarded updateOne), `failedLapsed`
    /// is told, and the claim goes on with the next candidate.
    public func claim(owner: String, leaseSeconds: Int, busyProjects: [JSONValue] = [], maxAttempts: Int = 3,
                      now: Date = Date(),
                      failedLapsed: @escaping @Sendable (LeaseLapse) -> Void = { _ in }) async throws -> ClaimedJob? {
        let token = UUID().uuidString
        let sent = ContinuousClock.now
        let nowJSON = JSONValue.date(now)
        let set: [String: JSONValue] = [
            "status": JobStatus.running.json, "stage": "claimed", "startedAt": nowJSON, "updatedAt": nowJSON,
            "lease": ["owner": .string(owner), "token": .string(token),
                      "expiresAt": .date(now.addingTimeInterval(Double(leaseSeconds)))]]
        let unset = ["notBefore", "finishedAt", "waitingForProject"]
        let update: [String: JSONValue] = [
            "$set": .object(set), "$inc": ["attempts": 1],
            "$unset": .object(Dictionary(uniqueKeysWithValues: unset.map { ($0, JSONValue.string("")) })),
        ]
        let search = claimSearch
        let busy = Set(busyProjects.map(\.jsonString))
        let doc = try await pool.run(jobsName) { [logCap] coll -> JSONValue? in
            // The guarded updateOne re-checks the claim conditions (one runner
            // wins). The candidate was read whole (but its logs) by the search,
            // so the claimed document is that with the claim applied: no
            // read-back. (Not findAndModify: SecantusDB scans the collection
            // for one, 1.6 s at 100,000 jobs.) `_id` sorts first in the filter,
            // so the server looks up one document.
            // The candidate is checked against the query that found it, and
            // the write's counts against each other: a contradiction is thrown
            // (`ServerContradiction`), and nothing is claimed on it.
            func tryClaim(_ candidate: JSONValue, _ conditions: [String: JSONValue]) throws -> JSONValue? {
                if let c = Self.checkCandidate(candidate, conditions: conditions, now: now) { throw c }
                guard let id = candidate["_id"] else { return nil }
                var filter = conditions
                filter["_id"] = id
                var update = update
                if let lapse = LeaseLapse(candidate, maxAttempts: maxAttempts) {
                    // Only the lapsed attempt as read: its lease token still there.
                    filter["lease.token"] = lapse.token ?? .null
                    if lapse.isLast {
                        if try CollectionOps.update(coll, filter: .object(filter), update: lapse.failUpdate(now: nowJSON, logCap: logCap)) == 1 {
                            failedLapsed(lapse)
                        }
                        return nil
                    }
                    update["$push"] = lapse.history(now: nowJSON, logCap: logCap)
                }
                let written = try CollectionOps.updateCounts(coll, filter: .object(filter), update: .object(update))
                if let c = Self.checkClaimWrite(matched: written.matched, modified: written.modified) { throw c }
                guard written.matched == 1 else { return nil }
                var claimed = candidate.objectValue ?? [:]
                claimed.merge(set) { $1 }
                claimed["attempts"] = .int(Int64(Job(candidate).attempts + 1))
                for name in unset { claimed[name] = nil }
                return .object(claimed)
            }
            return try search.next(coll, now: now, busy: busy, tryClaim: tryClaim,
                fallback: {
                    // The sorted full query, then the same guarded claim as the
                    // ranges; busy projects are skipped here (a portable `$nin`).
                    let candidates = try CollectionOps.find(coll, filter: Self.fullClaimQuery(now: nowJSON),
                                                            sortJSON: Self.claimSort, limit: Self.fallbackBatch,
                                                            projection: ClaimSearch.fields)
                    for doc in candidates {
                        if let project = DocumentFields.first(DocumentFields.projectRef, in: doc),
                           busy.contains(project.jsonString) { continue }
                        let running = doc["status"]?.stringValue == JobStatus.running.rawValue
                        if let claimed = try tryClaim(doc, running ? Self.expiredLease(now: nowJSON) : Self.pendingGuard(doc, now: nowJSON)) {
                            return claimed
                        }
                    }
                    return nil
                })
        }
        guard let doc, doc["_id"] != nil else { return nil }
        return ClaimedJob(document: doc, token: token, leaseStart: sent)
    }

    /// Whether a change stream tells this process of every change that can make
    /// a job claimable (the supervisor's, while it works). Only then does the
    /// claim keep the candidates a search read for the next claims (ClaimSearch).
    public func setClaimQueueWatched(_ on: Bool) { claimSearch.setWatched(on) }

    /// The queue changed (a change event, a deferred job's due time): the next
    /// claim searches afresh.
    public func claimQueueChanged() { claimSearch.invalidate() }

    /// The operators every query and update of the runner uses, supported
    /// alike by MongoDB >= 5, Amazon DocumentDB, Azure Cosmos DB for MongoDB
    /// (vCore) and FerretDB. No `$not`, `$ne`, `$nin` or `$and` (README,
    /// Portability). The operators' text search adds `$regex`.
    public static let portableOperators: Set<String> = [
        "$eq", "$in", "$lt", "$lte", "$gt", "$gte", "$exists", "$or",
        "$set", "$unset", "$inc", "$push", "$each", "$slice", "$addToSet",
    ]

    /// A pending job that may run now: not cancelled (the flag absent, null or
    /// false) and due (`notBefore` absent, null or passed). Portable operators only.
    static func pendingClaimable(now: JSONValue) -> [String: JSONValue] {
        ["status": JobStatus.pending.json, "cancelRequested": ["$in": [false, nil]],
         "$or": [["notBefore": ["$exists": false]], ["notBefore": nil], ["notBefore": ["$lte": now]]]]
    }

    /// The claim's re-check for one pending candidate, as read: still pending,
    /// not cancelled, and still due, by the one test that holds for its
    /// `notBefore` (absent or null, or passed). No `$or`: SecantusDB answers
    /// an update with `$or` in its filter by scanning the collection (0.7 s
    /// with 100,000 jobs), one with equalities, `$in` and a range at once. A
    /// `notBefore` changed since the read fails the check (another candidate
    /// is tried), never claims a job that is not due.
    static func pendingGuard(_ candidate: JSONValue, now: JSONValue) -> [String: JSONValue] {
        let notBefore = candidate["notBefore"]
        return ["status": JobStatus.pending.json, "cancelRequested": ["$in": [false, nil]],
                "notBefore": notBefore == nil || notBefore?.isNull == true ? .null : ["$lte": now]]
    }

    /// A running job whose lease has expired (its runner is gone).
    static func expiredLease(now: JSONValue) -> [String: JSONValue] {
        ["status": JobStatus.running.json, "lease.expiresAt": ["$lt": now]]
    }

    /// The whole claim condition as one query (ClaimSearch's fallback). Busy
    /// projects are skipped by the caller, not here (that would need `$nin`).
    static func fullClaimQuery(now: JSONValue) -> JSONValue {
        ["$or": [.object(pendingClaimable(now: now)), .object(expiredLease(now: now))]]
    }

    /// How many candidates the fallback reads (busy projects' jobs among them are skipped).
    static let fallbackBatch = 50

    private func fenced(_ job: ClaimedJob) -> JSONValue { ["_id": job.id, "lease.token": .string(job.token)] }

    /// `$push` of log lines, capped to the last `logCap`.
    func pushLogs(_ lines: [String]) -> JSONValue {
        ["logs": ["$each": .array(lines.map { .string($0) }), "$slice": .int(-Int64(logCap))]]
    }

    /// Writes the attempt's outcome, fenced on the lease, with the log lines
    /// not yet written (one write), `usage` as `metadata.usage`, a stopped
    /// run's `checkpoint` as `metadata.checkpoint` (not for `done`) and the
    /// event stream's last `seq` as `eventSeq`. False when the lease is lost.
    public func finish(_ job: ClaimedJob, _ outcome: JobOutcome, logs: [String] = [], usage: JSONValue? = nil,
                       checkpoint: JSONValue? = nil, eventSeq: Int? = nil) async throws -> Bool {
        let now = JSONValue.date(Date())
        var set: [String: JSONValue] = ["updatedAt": now]
        // Where the job's event stream continues at its next attempt.
        if let eventSeq { set["eventSeq"] = .int(Int64(eventSeq)) }
        var update: [String: JSONValue] = ["$unset": ["lease": ""]]
        // The model calls' usage (the egress proxy's metering), whatever the outcome.
        if let usage { set["metadata.usage"] = usage }
        if let checkpoint { set["metadata.checkpoint"] = checkpoint }
        switch outcome {
        case .done(let meta):
            var metadata = meta.json.objectValue ?? [:]
            metadata["usage"] = usage
            set.removeValue(forKey: "metadata.usage")
            set.removeValue(forKey: "metadata.checkpoint")
            set.merge(["status": JobStatus.done.json, "stage": "finished", "finishedAt": now, "metadata": .object(metadata)]) { $1 }
            update["$unset"] = ["lease": "", "error": "", "cancelRequested": ""]
        case .failed(let f):
            set.merge(["status": JobStatus.failed.json, "stage": "finished", "finishedAt": now, "error": f.json]) { $1 }
        case .retry(let f, let notBefore):
            set.merge(["status": JobStatus.pending.json, "error": f.json, "notBefore": .date(notBefore)]) { $1 }
        case .cancelled:
            set.merge(["status": JobStatus.cancelled.json, "stage": "finished", "finishedAt": now]) { $1 }
            update["$unset"] = ["lease": "", "error": ""]
        case .requeued:
            set["status"] = JobStatus.pending.json
            update["$inc"] = ["attempts": -1]
        }
        switch outcome {
        case .failed(let f), .retry(let f, _):
            var entry = f.json.objectValue ?? [:]
            entry["at"] = now
            entry["attempt"] = .int(Int64(job.attempt))
            update["$push"] = ["errors": ["$each": [.object(entry)], "$slice": -20]]
        default: break
        }
        // The reason of a cancel is the last line of `logs`.
        var lines = logs
        if case .cancelled(let why) = outcome { lines.append(why) }
        if !lines.isEmpty, case .object(let push) = pushLogs(lines) {
            update["$push"] = .object((update["$push"]?.objectValue ?? [:]).merging(push) { $1 })
        }
        update["$set"] = .object(set)
        let filter = fenced(job)
        let doc = JSONValue.object(update)
        do {
            return try await pool.run(jobsName) { try CollectionOps.update($0, filter: filter, update: doc) } == 1
        } catch let e as MongoError where e.isPathNotViable && set.keys.contains(where: { $0.hasPrefix("metadata.") }) {
            // `metadata` is not a document (the app wrote null): the outcome
            // is written with a `metadata` of the runner's own fields instead.
            var metadata: [String: JSONValue] = [:]
            for (key, value) in set where key.hasPrefix("metadata.") {
                metadata[String(key.dropFirst("metadata.".count))] = value
                set.removeValue(forKey: key)
            }
            set["metadata"] = .object(metadata)
            update["$set"] = .object(set)
            let retry = JSONValue.object(update)
            return try await pool.run(jobsName) { try CollectionOps.update($0, filter: filter, update: retry) } == 1
        }
    }

    /// The project a job refers to: the one whose `_id` is `ref` (stored as a
    /// string or an ObjectId), or else the one whose `projectId` field is `ref`
    /// (the app's camelCase path keeps its own id there).
    public func project(_ ref: JSONValue) async throws -> JSONValue? {
        var ids: [JSONValue] = [ref]
        if let s = ref.stringValue, s.count == 24, s.allSatisfy(\.isHexDigit) { ids.append(["$oid": .string(s.lowercased())]) }
        if let oid = ref["$oid"]?.stringValue { ids.append(.string(oid)) }
        let byId: JSONValue = ["_id": ["$in": .array(ids)]]
        let byField: JSONValue = [DocumentFields.projectOwnId: ref]
        return try await pool.run(projectsName) { coll in
            try CollectionOps.find(coll, filter: byId, limit: 1).first
                ?? CollectionOps.find(coll, filter: byField, limit: 1).first
        }
    }

    /// `project(_:)`, decoded.
    public func resolveProject(_ ref: JSONValue) async throws -> Project? {
        try await project(ref).map(Project.init)
    }
}
