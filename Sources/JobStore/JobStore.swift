import Foundation
import RunnerCore

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

    /// The filter of a write fenced on `job`'s lease: its `_id` and lease token.
    func fenced(_ job: ClaimedJob) -> JSONValue { ["_id": job.id, "lease.token": .string(job.token)] }

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
