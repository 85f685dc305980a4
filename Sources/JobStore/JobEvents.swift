import Foundation
import RunnerCore

/// The `job_events` collection (docs/contract.md, "Job events"): one
/// document per event of a job's stream, `{jobId, seq, attempt, at, v, kind,
/// data, clipped?}`, unique by `(jobId, seq)`, removed by a TTL index on
/// `at` after JOB_EVENTS_TTL_DAYS. Written by the supervisor in batches (one
/// request for every job's pending events), read by the dashboard and the CLI.
extension JobStore {
    var eventsName: String { collectionPrefix + "job_events" }

    /// The names of the indexes `ensureEventIndexes` creates on `job_events`.
    public static let eventIndexNames = ["job_seq", "ttl_at"]

    /// Creates the stream's indexes: `(jobId, seq)` unique (the reads and
    /// the stream's order) and the TTL index on `at` (`ttlDays`). An existing
    /// TTL index with another lifetime is changed to this one (`collMod`).
    public func ensureEventIndexes(ttlDays: Int) async throws {
        let seconds = ttlDays * 86_400
        let name = eventsName
        let create = """
        {"createIndexes": "\(name)", "indexes": [
          {"key": {"jobId": 1, "seq": 1}, "name": "job_seq", "unique": true},
          {"key": {"at": 1}, "name": "ttl_at", "expireAfterSeconds": \(seconds)}
        ]}
        """
        do {
            try await pool.run(name) { try CollectionOps.writeCommand($0, create) }
        } catch let e as MongoError where Self.indexOptionsConflict.contains(e.code) {
            _ = try await pool.command(["collMod": .string(name),
                                        "index": ["name": "ttl_at", "expireAfterSeconds": .int(Int64(seconds))]])
        }
    }

    /// IndexOptionsConflict (85) and IndexKeySpecsConflict (86): an index of that name exists with other options.
    static let indexOptionsConflict: Set<UInt32> = [85, 86]

    /// The indexes of `job_events` as the server lists them (`name`, `key`, `expireAfterSeconds`, …); empty before the first.
    public func eventIndexes() async throws -> [JSONValue] {
        do {
            return try await pool.command(["listIndexes": .string(eventsName)])["cursor"]?["firstBatch"]?.arrayValue ?? []
        } catch let e as MongoError where e.code == 26 { // NamespaceNotFound: no collection yet
            return []
        }
    }

    /// Stores several jobs' events in one request (each event numbered
    /// already). An event already stored (a retried flush the server had
    /// taken) is not stored twice: the unique `(jobId, seq)` refuses it.
    public func insertEvents(_ batch: [(jobId: JSONValue, events: [JobEvent])]) async throws {
        let docs: [JSONValue] = batch.flatMap { job in
            job.events.map { e -> JSONValue in
                var o = e.json.objectValue ?? [:]
                o["jobId"] = job.jobId
                return .object(o)
            }
        }
        guard !docs.isEmpty else { return }
        do {
            _ = try await pool.run(eventsName) { try CollectionOps.insertEach($0, docs) }
        } catch let e as MongoError where e.isDuplicateKey {
            // The others of the unordered insert were stored.
        }
    }

    /// The highest `seq` stored for the job (0: none): where a later attempt's events continue.
    public func lastEventSeq(_ jobId: JSONValue) async throws -> Int {
        let filter: JSONValue = ["jobId": jobId]
        let last = try await pool.run(eventsName) { coll in
            try CollectionOps.find(coll, filter: filter, sortJSON: #"{"seq": -1}"#, limit: 1, projection: ["seq": 1]).first
        }
        return Int(last?["seq"]?.intValue ?? 0)
    }

    /// A job's events with `seq` above `after`, in order, at most `limit`,
    /// of the `kinds` given (nil: all). `jobId` is the id as text (an
    /// ObjectId's hex matches either form).
    public func events(jobId: String, after: Int, kinds: [String]? = nil, limit: Int) async throws -> [JSONValue] {
        var ids: [JSONValue] = [.string(jobId)]
        if jobId.count == 24, jobId.allSatisfy(\.isHexDigit) { ids.append(["$oid": .string(jobId.lowercased())]) }
        var filter: [String: JSONValue] = ["jobId": ["$in": .array(ids)], "seq": ["$gt": .int(Int64(after))]]
        if let kinds, !kinds.isEmpty { filter["kind"] = ["$in": .array(kinds.map { .string($0) })] }
        let query = JSONValue.object(filter)
        return try await pool.run(eventsName) { coll in
            try CollectionOps.find(coll, filter: query, sortJSON: #"{"seq": 1}"#, limit: limit, projection: ["_id": 0])
        }
    }
}
