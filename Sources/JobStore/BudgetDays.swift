import Foundation
import RunnerCore

/// The shared daily spend (docs/budgets.md, "Daily budgets"): one counter
/// document per user or project and UTC day in `budget_days`, `_id` =
/// `SpendKey.documentId`, `{scope, id, day, usd, calls}`. Every supervisor
/// adds each model call's cost with one atomic `$inc` (an upsert on `_id`),
/// so that many supervisors share one budget; the answer, the counter after
/// the increment, is checked before it is believed.
extension JobStore {
    var budgetDaysName: String { collectionPrefix + "budget_days" }

    /// Adds `usd` (one call's cost) to `key`'s counter and returns its total
    /// after the increment. Throws `ServerContradiction` when the server's
    /// answer is not that counter (another `_id`, no number, or a total below
    /// the increment itself). The counter is made first when it is missing
    /// (an upsert with `$inc` by 0, a concurrent maker's duplicate key ignored), and
    /// the increment is never an upsert: a server that answers an upsert
    /// without its document (seen with two supervisors' first calls of a day
    /// at once) cannot make it count twice.
    public func addSpend(_ usd: Double, to key: SpendKey) async throws -> Double {
        let query: JSONValue = ["_id": .string(key.documentId)]
        let update: JSONValue = ["$inc": ["usd": .double(usd), "calls": 1], "$set": ["updatedAt": .date(Date())]]
        let increment = { [budgetDaysName, pool] () async throws -> JSONValue? in
            try await pool.run(budgetDaysName) { coll in
                try CollectionOps.findAndModify(coll, query: query, sortJSON: nil, update: update)
            }
        }
        if let answer = try await increment() { return try Self.checkedTotal(answer, key: key, added: usd) }
        // The day's first call: make the counter, then count.
        // `$inc` by 0 makes the fields at 0 and changes nothing on a counter made meanwhile (portable operators only).
        let make: JSONValue = ["$set": ["scope": .string(key.scope.rawValue), "id": .string(key.id), "day": .string(key.day)],
                               "$inc": ["usd": .double(0), "calls": 0]]
        do {
            _ = try await pool.run(budgetDaysName) { coll in
                try CollectionOps.update(coll, filter: query, update: make, upsert: true)
            }
        } catch let e as MongoError where e.isDuplicateKey {
            // Another supervisor made it at the same moment.
        }
        return try Self.checkedTotal(try await increment(), key: key, added: usd)
    }

    /// The counter after an increment of `added`, from the server's answer
    /// (the document after the update), or a `ServerContradiction`.
    static func checkedTotal(_ answer: JSONValue?, key: SpendKey, added: Double) throws -> Double {
        let shape = "findAndModify on budget_days with $inc and the document after"
        guard let answer else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "an increment of \(key.documentId), which exists",
                                      second: "no document came back")
        }
        guard answer["_id"]?.stringValue == key.documentId else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "an increment of \(key.documentId)",
                                      second: "the answer is \(LogBounds.clip(answer["_id"]?.jsonString ?? "no _id", bytes: 120))")
        }
        guard let total = answer["usd"]?.numberValue, total.isFinite, total >= added * (1 - 1e-9) else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "an increment of \(added) USD",
                                      second: "the counter after it is \(answer["usd"]?.jsonString ?? "missing")")
        }
        return total
    }

    /// The counters of `keys` (0 for a day without spend).
    public func spend(of keys: [SpendKey]) async throws -> [SpendKey: Double] {
        guard !keys.isEmpty else { return [:] }
        let filter: JSONValue = ["_id": ["$in": .array(keys.map { .string($0.documentId) })]]
        let docs = try await pool.run(budgetDaysName) { try CollectionOps.find($0, filter: filter) }
        var out: [SpendKey: Double] = [:]
        for key in keys {
            let doc = docs.first { $0["_id"]?.stringValue == key.documentId }
            out[key] = doc?["usd"]?.numberValue ?? 0
        }
        return out
    }

    /// The counters of the last `days` days (newest first), for the
    /// dashboard's spend view: `{scope, id, day, usd, calls}` each.
    public func spendDays(since day: String, limit: Int = 500) async throws -> [JSONValue] {
        let filter: JSONValue = ["day": ["$gte": .string(day)]]
        return try await pool.run(budgetDaysName) { coll in
            try CollectionOps.find(coll, filter: filter, sortJSON: #"{"day": -1, "usd": -1}"#, limit: limit,
                                   projection: ["scope": 1, "id": 1, "day": 1, "usd": 1, "calls": 1])
        }
    }
}

extension JobStore {
    /// Puts a claimed job back until `notBefore` (a daily budget spent, with
    /// DAILY_BUDGET_ACTION=wait): pending, the attempt not counted, `line`
    /// in its log. False when the lease was lost meanwhile.
    public func deferUntil(_ job: ClaimedJob, notBefore: Date, line: String) async throws -> Bool {
        var update: [String: JSONValue] = [
            "$set": ["status": JobStatus.pending.json, "updatedAt": .date(Date()), "notBefore": .date(notBefore)],
            "$inc": ["attempts": -1],
            "$unset": ["lease": "", "stage": ""],
        ]
        if case .object(let push) = pushLogs([line]) { update["$push"] = .object(push) }
        let filter: JSONValue = ["_id": job.id, "lease.token": .string(job.token)]
        let doc = JSONValue.object(update)
        return try await pool.run(jobsName) { try CollectionOps.update($0, filter: filter, update: doc) } == 1
    }
}
