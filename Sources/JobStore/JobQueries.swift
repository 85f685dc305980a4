import Foundation
import RunnerCore

/// Operator and web-app side operations: seeding, listing, retry, cancel.
extension JobStore {
    /// Inserts a project; returns its string `_id`.
    public func insertProject(name: String, repoURL: String?) async throws -> String {
        let id = ObjectIDText.make()
        var doc: [String: JSONValue] = ["_id": .string(id), "name": .string(name), "jobIds": [],
                                        "createdAt": .date(Date())]
        if let repoURL { doc["githubRepoUrl"] = .string(repoURL) }
        let document = JSONValue.object(doc)
        try await pool.run(projectsName) { try CollectionOps.insert($0, document) }
        return id
    }

    /// Inserts a pending job for `projectId` with `spec`; returns its string `_id`.
    public func insertJob(projectId: String, spec: JSONValue, priority: Int? = nil, id: JSONValue? = nil) async throws -> String {
        let jobId = id ?? .string(ObjectIDText.make())
        var doc: [String: JSONValue] = ["_id": jobId, "projectId": .string(projectId), "architecture_spec": spec,
                                        "status": JobStatus.pending.json, "logs": [], "createdAt": .date(Date())]
        if let priority { doc["priority"] = .int(Int64(priority)) }
        let document = JSONValue.object(doc)
        try await pool.run(jobsName) { try CollectionOps.insert($0, document) }
        return Self.idText(jobId)
    }

    /// One job by its id text, or nil.
    public func job(_ idText: String) async throws -> JSONValue? {
        let filter = Self.idFilter(idText)
        return try await pool.run(jobsName) { try CollectionOps.find($0, filter: filter, limit: 1) }.first
    }

    /// Jobs, newest first by `createdAt` or else `created_at`, optionally with one status.
    public func jobs(status: String?, limit: Int) async throws -> [JSONValue] {
        // The newest `limit` of each shape, merged: a job with `createdAt`, then
        // one without it (by `created_at`; none at all sorts last).
        // (`$exists` rather than `$ne: null`, which not every server implements:
        // a null `createdAt` matches both queries and is kept once.)
        var camel: [String: JSONValue] = ["createdAt": ["$exists": true]]
        var snake: [String: JSONValue] = ["createdAt": nil]
        if let status { camel["status"] = .string(status); snake["status"] = .string(status) }
        let (a, b) = (JSONValue.object(camel), JSONValue.object(snake))
        let docs = try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: a, sortJSON: #"{"createdAt": -1}"#, limit: limit,
                                   projection: ["logs": 0, "architecture_spec": 0])
                + CollectionOps.find(coll, filter: b, sortJSON: #"{"created_at": -1}"#, limit: limit,
                                     projection: ["logs": 0, "architecture_spec": 0])
        }
        let ms = { (d: JSONValue) in Job.createdMilliseconds(d) ?? .min }
        var seen = Set<String>()
        let unique = docs.filter { seen.insert($0["_id"]?.jsonString ?? "").inserted }
        return Array(unique.enumerated().sorted { x, y in
            ms(x.element) != ms(y.element) ? ms(x.element) > ms(y.element) : x.offset < y.offset
        }.map(\.element).prefix(limit))
    }

    /// failed or cancelled → pending with attempts reset. False when not in such a state.
    public func retry(_ idText: String) async throws -> Bool {
        guard case .object(var filter) = Self.idFilter(idText) else { return false }
        filter["status"] = ["$in": [JobStatus.failed.json, JobStatus.cancelled.json]]
        let update: JSONValue = ["$set": ["status": JobStatus.pending.json, "attempts": 0, "updatedAt": .date(Date())],
                                 "$unset": ["error": "", "notBefore": "", "cancelRequested": "", "finishedAt": "",
                                            "lease": ""]]
        let f = JSONValue.object(filter)
        return try await pool.run(jobsName) { try CollectionOps.update($0, filter: f, update: update) } == 1
    }

    /// Asks for cancellation: a pending job ends `cancelled` at once; a running
    /// one is stopped by its runner. False when the job is already finished.
    public func requestCancel(_ idText: String) async throws -> Bool {
        guard case .object(var filter) = Self.idFilter(idText) else { return false }
        let now = JSONValue.date(Date())
        filter["status"] = JobStatus.pending.json
        let pendingFilter = JSONValue.object(filter)
        let cancelPending: JSONValue = ["$set": [
            "status": JobStatus.cancelled.json, "stage": "finished", "cancelRequested": true, "finishedAt": now, "updatedAt": now],
            "$push": ["logs": "cancelled before it ran"], "$unset": ["error": ""]]
        if try await pool.run(jobsName, { try CollectionOps.update($0, filter: pendingFilter, update: cancelPending) }) == 1 {
            return true
        }
        filter["status"] = JobStatus.running.json
        let runningFilter = JSONValue.object(filter)
        let flag: JSONValue = ["$set": ["cancelRequested": true, "updatedAt": now]]
        return try await pool.run(jobsName) { try CollectionOps.update($0, filter: runningFilter, update: flag) } == 1
    }
}

/// ObjectId-shaped ids for documents the runner creates (the seed app uses
/// `str(ObjectId())`): 4 bytes of time, 8 random bytes, as 24 hex digits.
public enum ObjectIDText {
    public static func make() -> String {
        let time = UInt32(Date().timeIntervalSince1970)
        var bytes = withUnsafeBytes(of: time.bigEndian) { Array($0) }
        for _ in 0..<8 { bytes.append(UInt8.random(in: 0...255)) }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}

extension JobStore {
    /// When the earliest deferred pending job becomes due, if any.
    public func nextDue(after now: Date = Date()) async throws -> Date? {
        let filter: JSONValue = ["status": JobStatus.pending.json, "notBefore": ["$gt": .date(now)]]
        return try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: filter, sortJSON: #"{"notBefore": 1}"#, limit: 1,
                                   projection: ["notBefore": 1]).first?["notBefore"]?.dateValue
        }
    }
}
