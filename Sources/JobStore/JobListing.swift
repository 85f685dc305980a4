import Foundation
import RunnerCore

/// A filter on the jobs list given by an operator (CLI `jobs`, the dashboard),
/// validated before it reaches the database.
public struct JobFilter: Sendable, Equatable {
    /// The statuses a job can have.
    public static let statuses = JobStatus.allCases.map(\.rawValue)

    public let status: String?
    public let projectId: String?
    public let text: String?

    /// Validates each part; throws naming the bad one. Empty strings mean "any".
    public init(status: String? = nil, projectId: String? = nil, text: String? = nil) throws {
        let status = status.flatMap { $0.isEmpty ? nil : $0 }
        let projectId = projectId.flatMap { $0.isEmpty ? nil : $0 }
        let text = text.map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        if let status, !Self.statuses.contains(status) {
            throw JobFilterError(field: "status", reason: "must be one of \(Self.statuses.joined(separator: ", "))")
        }
        if let projectId, !Self.isPlainText(projectId, max: 128) {
            throw JobFilterError(field: "project", reason: "must be at most 128 printable characters")
        }
        if let text, !Self.isPlainText(text, max: 200) {
            throw JobFilterError(field: "q", reason: "must be at most 200 printable characters")
        }
        self.status = status
        self.projectId = projectId
        self.text = text
    }

    static func isPlainText(_ s: String, max: Int) -> Bool {
        s.count <= max && !s.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// The MongoDB query.
    var query: JSONValue {
        var parts: [JSONValue] = []
        if let status { parts.append(["status": .string(status)]) }
        if let projectId {
            parts.append(["$or": .array(DocumentFields.projectRef.map { JobStore.idFilter(projectId, field: $0) })])
        }
        if let text {
            let pattern = JSONValue.string(NSRegularExpression.escapedPattern(for: text))
            let fields = ["_id", "projectId", "project_id", "stage", "error.code", "error.message", "metadata.generator",
                          "metadata.commitSha", "metadata.repoUrl"]
            var any: [JSONValue] = fields.map { [$0: ["$regex": pattern, "$options": "i"]] }
            if text.count == 24, text.allSatisfy(\.isHexDigit) { any.append(JobStore.idFilter(text)) }
            parts.append(["$or": .array(any)])
        }
        // Every part in one document, without `$and` (not every server has it):
        // two `$or` parts become one `$or` of their combinations.
        var merged: [String: JSONValue] = [:]
        for part in parts {
            guard case .object(let fields) = part else { continue }
            for (key, value) in fields {
                if key == "$or", let mine = merged["$or"]?.arrayValue, let theirs = value.arrayValue {
                    merged["$or"] = .array(mine.flatMap { a in theirs.map { b in Self.both(a, b) } })
                } else {
                    merged[key] = value
                }
            }
        }
        return .object(merged)
    }

    /// Two conditions in one document. A field both test (the project's id and
    /// the text search on it) gets one operator document holding both tests
    /// (`{"$eq": id, "$regex": …}`), which the server ANDs.
    static func both(_ a: JSONValue, _ b: JSONValue) -> JSONValue {
        func operators(_ v: JSONValue) -> [String: JSONValue] {
            if let o = v.objectValue, !o.isEmpty, o.keys.allSatisfy({ $0.hasPrefix("$") }) { return o }
            return ["$eq": v]
        }
        var o = a.objectValue ?? [:]
        for (k, v) in b.objectValue ?? [:] {
            if let mine = o[k] { o[k] = .object(operators(mine).merging(operators(v)) { x, _ in x }) } else { o[k] = v }
        }
        return .object(o)
    }
}

/// A rejected filter value: `field` names the query parameter.
public struct JobFilterError: Error, Sendable, CustomStringConvertible {
    public let field: String
    public let reason: String
    public var description: String { "\(field) \(reason)" }
}

/// What an operator's retry or cancel did, with the CLI's one-line message.
public enum OperatorOutcome: Sendable, Equatable {
    case applied(String)
    case notFound(String)
    /// The job is in a state that does not allow the action.
    case refused(String)

    public var message: String {
        switch self {
        case .applied(let m), .notFound(let m), .refused(let m): m
        }
    }
}

/// A supervisor seen through the leases of the jobs it runs.
public struct RunnerLease: Sendable {
    public let owner: String
    public let jobIds: [String]
    /// The latest lease expiry among its jobs (a heartbeat sets it to now + LEASE_SECONDS).
    public let leaseExpiresAt: Date?
    /// The latest `updatedAt` among its jobs.
    public let lastActivity: Date?
}

/// The dashboard's and the CLI's read side: filtered listing, counts, runners, projects.
extension JobStore {
    /// The fields a list row needs (logs, spec and error history left out).
    static let listProjection: JSONValue = ["logs": 0, "architecture_spec": 0, "errors": 0]

    /// A filter matching `field` given as text: the string, or an ObjectId when it looks like one.
    public static func idFilter(_ text: String, field: String) -> JSONValue {
        guard case .object(let o) = idFilter(text), let value = o["_id"] else { return [field: .string(text)] }
        return [field: value]
    }

    /// Jobs matching `filter`, newest first: by `createdAt`, then those with
    /// only the app's `created_at` by that (one query, so pages are stable).
    public func jobs(matching filter: JobFilter, skip: Int, limit: Int) async throws -> [JSONValue] {
        let query = filter.query
        return try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: query, sortJSON: #"{"createdAt": -1, "created_at": -1, "_id": -1}"#, skip: skip,
                                   limit: limit, projection: Self.listProjection)
        }
    }

    /// One job without its architecture spec (for views that poll it), or nil.
    public func jobView(_ idText: String) async throws -> JSONValue? {
        let filter = Self.idFilter(idText)
        return try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: filter, limit: 1, projection: ["architecture_spec": 0]).first
        }
    }

    /// How many jobs have each status (every status present, zero when none).
    public func statusCounts() async throws -> [String: Int] {
        try await pool.run(jobsName) { coll in
            var counts: [String: Int] = [:]
            for status in JobFilter.statuses {
                counts[status] = try CollectionOps.count(coll, filter: ["status": .string(status)])
            }
            return counts
        }
    }

    /// Running jobs, longest-running first.
    public func runningJobs(limit: Int = 200) async throws -> [JSONValue] {
        try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: ["status": JobStatus.running.json], sortJSON: #"{"startedAt": 1}"#, limit: limit,
                                   projection: Self.listProjection)
        }
    }

    /// The supervisors holding leases on running jobs, by owner.
    public func runnerLeases() async throws -> [RunnerLease] {
        let docs = try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: ["status": JobStatus.running.json, "lease.owner": ["$exists": true]],
                                   projection: ["lease": 1, "updatedAt": 1])
        }
        var byOwner: [String: (ids: [String], expires: Date?, activity: Date?)] = [:]
        for doc in docs {
            guard let owner = doc["lease"]?["owner"]?.stringValue else { continue }
            var entry = byOwner[owner] ?? ([], nil, nil)
            entry.ids.append(Self.idText(doc["_id"] ?? nil))
            if let e = doc["lease"]?["expiresAt"]?.dateValue { entry.expires = max(entry.expires ?? e, e) }
            if let a = doc["updatedAt"]?.dateValue { entry.activity = max(entry.activity ?? a, a) }
            byOwner[owner] = entry
        }
        return byOwner.keys.sorted().map { owner in
            let e = byOwner[owner]!
            return RunnerLease(owner: owner, jobIds: e.ids.sorted(), leaseExpiresAt: e.expires, lastActivity: e.activity)
        }
    }

    /// The project's lock document when one is live now (`jobId`, `expiresAt`), else nil.
    public func projectLock(_ projectIdText: String, now: Date = Date()) async throws -> JSONValue? {
        guard case .object(var filter) = Self.idFilter(projectIdText) else { return nil }
        filter["expiresAt"] = ["$gt": .date(now)]
        let f = JSONValue.object(filter)
        return try await pool.run(locksName) { coll in
            try CollectionOps.find(coll, filter: f, limit: 1, projection: ["token": 0]).first
        }
    }

    /// The project's latest done job that recorded a commit, or nil.
    public func lastSuccessfulCommit(_ projectIdText: String) async throws -> JSONValue? {
        let f: JSONValue = ["$or": .array(DocumentFields.projectRef.map { Self.idFilter(projectIdText, field: $0) }),
                            "status": JobStatus.done.json, "metadata.commitSha": ["$exists": true]]
        return try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: f, sortJSON: #"{"finishedAt": -1}"#, limit: 1,
                                   projection: Self.listProjection).first
        }
    }

    /// `agent-runner retry` and the dashboard's Retry: failed or cancelled → pending.
    public func retryJob(_ idText: String) async throws -> OperatorOutcome {
        guard try await jobView(idText) != nil else { return .notFound("no job with id \(idText)") }
        return try await retry(idText) ? .applied("job \(idText) is pending again")
            : .refused("job \(idText) is not failed or cancelled")
    }

    /// `agent-runner cancel` and the dashboard's Cancel: pending ends at once, running is stopped by its runner.
    public func cancelJob(_ idText: String) async throws -> OperatorOutcome {
        guard try await jobView(idText) != nil else { return .notFound("no job with id \(idText)") }
        return try await requestCancel(idText) ? .applied("cancellation requested for job \(idText)")
            : .refused("job \(idText) has already finished")
    }
}
