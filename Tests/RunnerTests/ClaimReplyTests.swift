import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// A claim whose answer is lost: the server applied it, the reply never came
/// back (a loaded server past the socket timeout), and the driver's retry of
/// the write matched nothing, as on a server that does not recognise retried
/// writes. The claim reads its fresh lease token back and the job is the
/// runner's, instead of staying claimed by nobody until its lease lapses (an
/// attempt lost; with JOB_MAX_ATTEMPTS=1, the job failed `lease_lost`).
@Suite struct ClaimReplyTests {
    @Test func aClaimWhoseAnswerIsLostIsStillTheRunners() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        // The claim is the one update that increments `attempts`.
        let proxy = try await DatabaseProxy(misbehaving: [.loseReply(pattern: "attempts")])
        defer { proxy.stop() }
        let store = JobStore(pool: try MongoPool(uri: proxy.uri, databaseName: h.dbName), logCap: 100)
        let claimed = try await store.claim(owner: "t", leaseSeconds: 600)
        #expect(claimed?.idText == id, "the claim that was applied is the runner's")
        let doc = try await h.job(id)
        #expect(doc["status"]?.stringValue == "running")
        #expect(doc["lease"]?["token"]?.stringValue == claimed?.token, "the stored lease is this claim's")
        #expect(doc["attempts"]?.intValue == 1, "applied once: \(doc)")
    }
}
