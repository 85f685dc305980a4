import Foundation
import RunnerCore

/// One counter of the shared daily spend as the server holds it.
public struct DayCounter: Sendable, Equatable {
    /// What the day's settled calls cost.
    public var usd: Double
    /// `usd` plus the bounds of the calls under way (reserved, not yet
    /// settled): what a reservation is guarded by.
    public var committed: Double

    public init(usd: Double, committed: Double) {
        self.usd = usd
        self.committed = committed
    }
}

/// The shared daily spend (docs/budgets.md, "Daily budgets"): one counter
/// document per user or project and UTC day in `budget_days`, `_id` =
/// `SpendKey.documentId`, `{scope, id, day, usd, committed, calls}`. Before a
/// model call starts, its bound is reserved with one atomic guarded increment
/// (`reserve`: `committed` < limit); once it ends, the reservation is settled
/// at its cost (`settle`). So every supervisor sees the worst case of every
/// call under way, and a budget is passed by at most one call's bound. Each
/// answer is checked before it is believed.
extension JobStore {
    var budgetDaysName: String { collectionPrefix + "budget_days" }

    /// Reserves `usd` (one call's bound) on `key`'s counter while its
    /// `committed` is below `limit`: true and the counter after, or false and
    /// the counter that refuses it. One `findAndModify` when the counter
    /// exists; a missing one is made first (an upsert with `$inc` by 0, a
    /// concurrent maker's duplicate key ignored), one made by an older
    /// runner gets its `committed` (its `usd`). At most three increments are
    /// tried; a server whose answers still contradict each other is a
    /// `ServerContradiction`, never a loop.
    public func reserve(_ usd: Double, on key: SpendKey, limit: Double) async throws -> (reserved: Bool, counter: DayCounter) {
        let id: JSONValue = ["_id": .string(key.documentId)]
        let query: JSONValue = ["_id": .string(key.documentId), "committed": ["$lt": .double(limit)]]
        let update: JSONValue = ["$inc": ["committed": .double(usd)], "$set": ["updatedAt": .date(Date())]]
        var seen = "nothing read"
        for _ in 0..<3 {
            if let answer = try await pool.run(budgetDaysName, { coll in
                try CollectionOps.findAndModify(coll, query: query, sortJSON: nil, update: update)
            }) {
                return (true, try Self.checkedReservation(answer, key: key, usd: usd, limit: limit))
            }
            // Not matched: the counter is missing, has no `committed` yet, or is at its limit.
            guard let doc = try await pool.run(budgetDaysName, { try CollectionOps.find($0, filter: id) }).first else {
                try await makeCounter(key)
                seen = "no counter"
                continue
            }
            guard doc["committed"] != nil else {
                let spent = doc["usd"]?.numberValue ?? 0
                let filter: JSONValue = ["_id": .string(key.documentId), "committed": ["$exists": false]]
                _ = try await pool.run(budgetDaysName) { coll in
                    try CollectionOps.update(coll, filter: filter, update: ["$set": ["committed": .double(spent)]])
                }
                seen = "a counter without committed"
                continue
            }
            let counter = try Self.checkedCounter(doc, key: key)
            if counter.committed >= limit { return (false, counter) }
            // Below its limit when read: a settlement lowered it since the increment; once more.
            seen = "\(key.documentId) committed \(counter.committed), below \(limit)"
        }
        throw ServerContradiction(operation: "daily spend reservation", shape: "findAndModify on budget_days with $lt on committed",
                                  first: "three guarded increments of \(key.documentId) matched nothing", second: "the read found \(seen)")
    }

    /// Settles a reservation of `reserved` at the call's cost `actual`:
    /// `committed` by their difference, `usd` by `actual`, one call more;
    /// returns the counter after (one `findAndModify`, the answer checked).
    public func settle(_ key: SpendKey, reserved: Double, actual: Double) async throws -> DayCounter {
        let query: JSONValue = ["_id": .string(key.documentId)]
        let update: JSONValue = ["$inc": ["committed": .double(actual - reserved), "usd": .double(actual), "calls": 1],
                                 "$set": ["updatedAt": .date(Date())]]
        let answer = try await pool.run(budgetDaysName) { coll in
            try CollectionOps.findAndModify(coll, query: query, sortJSON: nil, update: update)
        }
        return try Self.checkedSettlement(answer, key: key, actual: actual)
    }

    /// Gives back a reservation of `usd` whose call does not start (another
    /// counter refused it). Throws when the server matched no counter.
    public func release(_ usd: Double, on key: SpendKey) async throws {
        let filter: JSONValue = ["_id": .string(key.documentId)]
        let matched = try await pool.run(budgetDaysName) { coll in
            try CollectionOps.update(coll, filter: filter, update: ["$inc": ["committed": .double(-usd)]])
        }
        guard matched == 1 else {
            throw ServerContradiction(operation: "daily spend release", shape: "updateOne on budget_days by _id",
                                      first: "\(key.documentId) was reserved", second: "the release matched \(matched) counters")
        }
    }

    /// Makes `key`'s counter at 0 (`$inc` by 0 makes the fields and changes
    /// nothing on a counter made meanwhile; portable operators only).
    func makeCounter(_ key: SpendKey) async throws {
        let query: JSONValue = ["_id": .string(key.documentId)]
        let make: JSONValue = ["$set": ["scope": .string(key.scope.rawValue), "id": .string(key.id), "day": .string(key.day)],
                               "$inc": ["usd": .double(0), "committed": .double(0), "calls": 0]]
        do {
            _ = try await pool.run(budgetDaysName) { coll in
                try CollectionOps.update(coll, filter: query, update: make, upsert: true)
            }
        } catch let e as MongoError where e.isDuplicateKey {
            // Another supervisor made it at the same moment.
        }
    }

    /// A counter document: its `_id` is `key`'s, its `usd` and `committed` finite numbers.
    static func checkedCounter(_ doc: JSONValue?, key: SpendKey, shape: String = "find on budget_days by _id") throws -> DayCounter {
        guard let doc else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "\(key.documentId) exists",
                                      second: "no document came back")
        }
        guard doc["_id"]?.stringValue == key.documentId else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "a change of \(key.documentId)",
                                      second: "the answer is \(LogBounds.clip(doc["_id"]?.jsonString ?? "no _id", bytes: 120))")
        }
        guard let usd = doc["usd"]?.numberValue, usd.isFinite, let committed = doc["committed"]?.numberValue, committed.isFinite else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "a counter of finite usd and committed",
                                      second: "usd \(doc["usd"]?.jsonString ?? "missing"), committed \(doc["committed"]?.jsonString ?? "missing")")
        }
        return DayCounter(usd: usd, committed: committed)
    }

    /// The counter after a reservation of `usd` guarded by `committed` <
    /// `limit`: its `committed` at least `usd`, and below `limit` before it.
    static func checkedReservation(_ answer: JSONValue?, key: SpendKey, usd: Double, limit: Double) throws -> DayCounter {
        let shape = "findAndModify on budget_days with $lt on committed, $inc and the document after"
        let counter = try checkedCounter(answer, key: key, shape: shape)
        let slack = 1e-9 * max(1, limit)
        guard counter.committed >= usd - slack, counter.committed - usd < limit + slack else {
            throw ServerContradiction(operation: "daily spend reservation", shape: shape,
                                      first: "a reservation of \(usd) USD while committed was below \(limit)",
                                      second: "committed after it is \(counter.committed)")
        }
        return counter
    }

    /// The counter after a settlement at `actual`: its `usd` at least `actual`.
    static func checkedSettlement(_ answer: JSONValue?, key: SpendKey, actual: Double) throws -> DayCounter {
        let shape = "findAndModify on budget_days with $inc and the document after"
        let counter = try checkedCounter(answer, key: key, shape: shape)
        guard counter.usd >= actual - 1e-9 * max(1, actual) else {
            throw ServerContradiction(operation: "daily spend", shape: shape, first: "an increment of \(actual) USD",
                                      second: "the counter after it is \(counter.usd)")
        }
        return counter
    }

    /// The counters of `keys` (0 for a day without spend; `committed` is
    /// `usd` on a counter an older runner made).
    public func spend(of keys: [SpendKey]) async throws -> [SpendKey: DayCounter] {
        guard !keys.isEmpty else { return [:] }
        let filter: JSONValue = ["_id": ["$in": .array(keys.map { .string($0.documentId) })]]
        let docs = try await pool.run(budgetDaysName) { try CollectionOps.find($0, filter: filter) }
        var out: [SpendKey: DayCounter] = [:]
        for key in keys {
            let doc = docs.first { $0["_id"]?.stringValue == key.documentId }
            let usd = doc?["usd"]?.numberValue ?? 0
            out[key] = DayCounter(usd: usd, committed: doc?["committed"]?.numberValue ?? usd)
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
