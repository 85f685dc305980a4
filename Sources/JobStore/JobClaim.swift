import Foundation
import RunnerCore

/// The claim: the next runnable job, atomically, and the queries it is made of.
extension JobStore {
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
                let written: (matched: Int, modified: Int?)
                do {
                    written = try CollectionOps.updateCounts(coll, filter: .object(filter), update: .object(update))
                } catch {
                    // The write may have been applied with its answer lost:
                    // the fresh token says whether it was.
                    guard try Self.holdsLease(coll, id: id, token: token) else { throw error }
                    written = (1, 1)
                }
                if let c = Self.checkClaimWrite(matched: written.matched, modified: written.modified) { throw c }
                // Matched none: another runner's claim won, or this one was
                // applied and its answer lost (the driver's retry of a write
                // whose reply timed out then matches none, on a server that
                // does not recognise retried writes).
                guard try written.matched == 1 || Self.holdsLease(coll, id: id, token: token) else { return nil }
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

    /// Whether job `id` holds the lease `token` (one read of its `_id`).
    static func holdsLease(_ coll: OpaquePointer, id: JSONValue, token: String) throws -> Bool {
        !(try CollectionOps.find(coll, filter: ["_id": id, "lease.token": .string(token)], limit: 1,
                                 projection: ["_id": 1])).isEmpty
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
}
