import Foundation
import RunnerCore

/// One supervisor's leases renewed together: a write per interval for all the
/// jobs it runs instead of one per job (issue 15). Each lease stays fenced on
/// its own token, so the write renews exactly the leases still this runner's.
extension JobStore {
    /// Renews every lease among `tokens` that is still held (and the project
    /// locks those jobs hold): one updateMany on jobs, one find to learn which
    /// tokens are still held, one updateMany on project_locks. Returns each
    /// token still held with whether its job's cancellation was requested; a
    /// token missing from the answer has lost its lease.
    public func renewLeases(_ tokens: [String], leaseSeconds: Int, now: Date = Date()) async throws -> [String: Bool] {
        guard !tokens.isEmpty else { return [:] }
        let until = JSONValue.date(now.addingTimeInterval(Double(leaseSeconds)))
        let mine: JSONValue = ["lease.token": ["$in": .array(tokens.map { .string($0) })], "status": "running"]
        let renew: JSONValue = ["$set": ["lease.expiresAt": until, "updatedAt": .date(now)]]
        _ = try await pool.run(jobsName) { try CollectionOps.update($0, filter: mine, update: renew, many: true) }
        // A token present now was present at the write (a lease, once taken
        // over, never comes back), so the write renewed it.
        let held = try await leaseFlags(tokens)
        if !held.isEmpty {
            let locks: JSONValue = ["token": ["$in": .array(held.keys.map { .string($0) })]]
            let extend: JSONValue = ["$set": ["expiresAt": until]]
            _ = try await pool.run(locksName) { try CollectionOps.update($0, filter: locks, update: extend, many: true) }
        }
        return held
    }

    /// The tokens among `tokens` whose job still holds that lease, each with
    /// its job's `cancelRequested` (one read for all of them).
    public func leaseFlags(_ tokens: [String]) async throws -> [String: Bool] {
        guard !tokens.isEmpty else { return [:] }
        let filter: JSONValue = ["lease.token": ["$in": .array(tokens.map { .string($0) })]]
        let docs = try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: filter, projection: ["lease.token": 1, "cancelRequested": 1])
        }
        var held: [String: Bool] = [:]
        for doc in docs {
            if let token = doc["lease"]?["token"]?.stringValue {
                held[token] = doc["cancelRequested"]?.boolValue == true
            }
        }
        return held
    }
}
