import Foundation
import RunnerCore

/// One supervisor's leases renewed together: a write per interval for all the
/// jobs it runs instead of one per job (issue 15). Each lease stays fenced on
/// its own token, so the write renews exactly the leases still this runner's.
extension JobStore {
    /// Renews every lease among `tokens` that is still held (and the project
    /// locks those jobs hold): one updateMany on jobs, one find to learn which
    /// tokens are still held, one updateMany on project_locks. The answer says
    /// each token still held with whether its job's cancellation was
    /// requested; a token missing from it has lost its lease. The read is
    /// checked against the write's matched count (`checkLeaseAnswer`;
    /// `released`: the tokens let go of meanwhile).
    public func renewLeases(_ tokens: [String], leaseSeconds: Int, now: Date = Date(),
                            released: @Sendable (String) -> Bool = { _ in false }) async throws -> LeaseAnswer {
        guard !tokens.isEmpty else { return LeaseAnswer() }
        let until = JSONValue.date(now.addingTimeInterval(Double(leaseSeconds)))
        let mine: JSONValue = ["lease.token": ["$in": .array(tokens.map { .string($0) })], "status": JobStatus.running.json]
        let renew: JSONValue = ["$set": ["lease.expiresAt": until, "updatedAt": .date(now)]]
        let matched = try await pool.run(jobsName) {
            try CollectionOps.update($0, filter: mine, update: renew, many: true)
        }
        // A token present now was present at the write (a lease, once taken
        // over, never comes back), so the write renewed it.
        let answer = Self.checkLeaseAnswer(tokens: tokens, matched: matched, docs: try await leaseDocuments(tokens),
                                           released: released)
        let kept = Array(answer.held.keys) + Array(answer.heldUnread)
        if !kept.isEmpty {
            let locks: JSONValue = ["token": ["$in": .array(kept.map { .string($0) })]]
            let extend: JSONValue = ["$set": ["expiresAt": until]]
            _ = try await pool.run(locksName) { try CollectionOps.update($0, filter: locks, update: extend, many: true) }
        }
        return answer
    }

    /// The tokens among `tokens` whose job still holds that lease, each with
    /// its job's `cancelRequested` (one read for all of them), checked
    /// (`checkLeaseAnswer`).
    public func leaseFlags(_ tokens: [String], released: @Sendable (String) -> Bool = { _ in false }) async throws -> LeaseAnswer {
        guard !tokens.isEmpty else { return LeaseAnswer() }
        return Self.checkLeaseAnswer(tokens: tokens, matched: nil, docs: try await leaseDocuments(tokens), released: released)
    }

    /// The jobs holding any of `tokens`, with their whole `lease` and `cancelRequested`.
    private func leaseDocuments(_ tokens: [String]) async throws -> [JSONValue] {
        let filter: JSONValue = ["lease.token": ["$in": .array(tokens.map { .string($0) })]]
        return try await pool.run(jobsName) { coll in
            try CollectionOps.find(coll, filter: filter, projection: Self.leaseProjection)
        }
    }
}
