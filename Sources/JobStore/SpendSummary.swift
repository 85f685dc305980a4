import Foundation
import RunnerCore

/// What jobs spent on model calls, by UTC day and by project, summed from
/// their `metadata.usage` (the egress proxy's metering): the dashboard's
/// spend view (`/spend`, `/api/spend`).
public struct SpendSummary: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        /// The UTC day (`YYYY-MM-DD`) or the project's id.
        public var key: String
        public var cost: Double = 0
        public var tokens: Int64 = 0
        public var requests: Int64 = 0
        public var jobs = 0
        /// Jobs with unpriced calls (their cost is a lower bound).
        public var unpriced = 0
    }
    /// Newest day first.
    public var days: [Row] = []
    /// Highest cost first.
    public var projects: [Row] = []
    /// Jobs read (at most `JobStore.spendJobsRead`).
    public var jobsRead = 0

    public init() {}

    /// Sums the jobs' usage (`docs` projected as `spendProjection`).
    public static func of(_ docs: [JSONValue]) -> SpendSummary {
        var days: [String: Row] = [:], projects: [String: Row] = [:]
        for doc in docs {
            guard let usage = doc["metadata"]?["usage"], usage.objectValue != nil else { continue }
            let day = (doc["finishedAt"]?.dateValue ?? doc["updatedAt"]?.dateValue).map { DailyBudgetSettings.day($0) } ?? "-"
            let project = Job(doc).projectRef.map(JobStore.idText) ?? "-"
            func add(_ row: inout Row) {
                row.cost += usage["cost"]?.numberValue.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil } ?? 0
                row.tokens = row.tokens.addingReportingOverflow(max(0, usage["tokens"]?.intValue ?? 0)).partialValue
                row.requests = row.requests.addingReportingOverflow(max(0, usage["requests"]?.intValue ?? 0)).partialValue
                row.jobs += 1
                if (usage["unpricedRequests"]?.intValue ?? 0) > 0 { row.unpriced += 1 }
            }
            add(&days[day, default: Row(key: day)])
            add(&projects[project, default: Row(key: project)])
        }
        var s = SpendSummary()
        s.days = days.values.sorted { $0.key > $1.key }
        s.projects = projects.values.sorted { $0.cost != $1.cost ? $0.cost > $1.cost : $0.key < $1.key }
        s.jobsRead = docs.count
        return s
    }
}

extension JobStore {
    /// The most jobs the spend view reads.
    public static let spendJobsRead = 5000

    /// The whole `metadata` (not a dotted projection, which some servers flatten) and what places the job.
    static let spendProjection: JSONValue = ["metadata": 1, "projectId": 1, "project_id": 1, "finishedAt": 1, "updatedAt": 1]

    /// The spend of the jobs that ended since `since` (newest first, at most `spendJobsRead`).
    public func spendSummary(since: Date) async throws -> SpendSummary {
        let filter: JSONValue = ["finishedAt": ["$gte": .date(since)], "metadata.usage": ["$exists": true]]
        let docs = try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: filter, sortJSON: #"{"finishedAt": -1}"#, limit: Self.spendJobsRead,
                                   projection: Self.spendProjection)
        }
        return SpendSummary.of(docs)
    }
}
