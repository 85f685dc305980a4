import CMongoC
import Foundation
import RunnerCore

/// Benchmark only (`agent-runner bench-bson`, run by `make bench`): what the
/// hot calls' documents cost to convert, in process and without a database,
/// by the builder and iterator path the store uses and by the JSON text path
/// it replaced (`bson_new_from_json` of `jsonString`; relaxed Extended JSON
/// parsed by `JSONValue.parse`). The documents have the shapes JobStore
/// sends and receives: the claim's guarded updateOne and its read of the
/// whole job, a heartbeat's findAndModify, and a log append of `logLines`.
public enum BSONBenchmark {
    /// For each call, microseconds per conversion of all its documents, by
    /// path: `{"claim": {"text_us", "builder_us"}, "heartbeat": …, "log_append": …}`,
    /// each the best of `rounds` rounds of `iterations` (a shared machine's
    /// noise only ever adds time).
    public static func run(spec: JSONValue, logLines: Int, iterations: Int, rounds: Int = 5) throws -> JSONValue {
        let now = JSONValue.date(Date())
        let id: JSONValue = ["$oid": "65a1b2c3d4e5f60718293a4b"]
        let token = JSONValue.string(UUID().uuidString)
        let lease: JSONValue = ["owner": "runner-1", "token": token, "expiresAt": now]
        let job: JSONValue = [
            "_id": id, "projectId": "65a1b2c3d4e5f60718293a4c", "architecture_spec": spec, "status": "running",
            "stage": "claimed", "attempts": 1, "createdAt": now, "startedAt": now, "updatedAt": now, "lease": lease,
            "logs": .array((0..<50).map { .string("earlier log line \($0): npm install finished ✓") }),
        ]
        // Mirrors JobStore.claim: the guarded updateOne, then the job read by `_id` and token.
        let claimSent: [JSONValue] = [
            ["_id": id, "status": "pending", "cancelRequested": ["$in": [false, nil]],
             "$or": [["notBefore": ["$exists": false]], ["notBefore": nil], ["notBefore": ["$lte": now]]]],
            ["$set": ["status": "running", "stage": "claimed", "startedAt": now, "updatedAt": now, "lease": lease],
             "$inc": ["attempts": 1], "$unset": ["notBefore": "", "finishedAt": "", "waitingForProject": ""]],
            ["_id": id, "lease.token": token],
        ]
        let claimRead: [JSONValue] = [["matchedCount": 1, "modifiedCount": 1, "upsertedCount": 0], job]
        // Mirrors JobStore.heartbeat.
        let beatSent: [JSONValue] = [
            ["_id": id, "lease.token": token], ["$set": ["lease.expiresAt": now, "updatedAt": now]], ["cancelRequested": 1],
        ]
        let beatRead: [JSONValue] = [["lastErrorObject": ["n": 1, "updatedExisting": true], "ok": .double(1),
                                      "value": ["_id": id]]]
        // Mirrors JobStore.appendLogs.
        let lines = (0..<logLines).map { JSONValue.string("[build] step \($0): compiled src/module\($0).ts in 12 ms") }
        let logSent: [JSONValue] = [
            ["_id": id, "lease.token": token],
            ["$push": ["logs": ["$each": .array(lines), "$slice": -1000]], "$set": ["updatedAt": now]],
        ]
        let logRead: [JSONValue] = [["matchedCount": 1, "modifiedCount": 1, "upsertedCount": 0]]

        var out: [String: JSONValue] = [:]
        for (name, sent, read) in [("claim", claimSent, claimRead), ("heartbeat", beatSent, beatRead),
                                   ("log_append", logSent, logRead)] {
            let replies = try read.map { try BSONDocument($0) }
            // Both paths must agree before their times mean anything.
            for (value, reply) in zip(read, replies) {
                guard try reply.json() == reply.withPointer(BSONDocument.jsonViaText),
                      try BSONDocument(value).json() == BSONDocument(extendedJSON: value.jsonString).json()
                else { throw MongoError(message: "the two paths disagree on \(name)", operation: "bench-bson") }
            }
            let text = try best(rounds, iterations) {
                for value in sent { _ = try BSONDocument(extendedJSON: value.jsonString) }
                for reply in replies { _ = try reply.withPointer(BSONDocument.jsonViaText) }
            }
            let builder = try best(rounds, iterations) {
                for value in sent { _ = try BSONDocument(value) }
                for reply in replies { _ = try reply.json() }
            }
            out[name] = ["text_us": .double(rounded(text)), "builder_us": .double(rounded(builder))]
        }
        let jobBytes = try BSONDocument(job).withPointer { Int64(bsonLength($0)) }
        out["job_document_bytes"] = .int(jobBytes)
        out["log_lines_per_append"] = .int(Int64(logLines))
        return .object(out)
    }

    /// Microseconds per call of `body`: the best round's mean.
    private static func best(_ rounds: Int, _ iterations: Int, _ body: () throws -> Void) throws -> Double {
        var best = Double.infinity
        for _ in 0..<rounds {
            let start = ContinuousClock.now
            for _ in 0..<iterations { try body() }
            best = min(best, (ContinuousClock.now - start) / .microseconds(1) / Double(iterations))
        }
        return best
    }

    private static func rounded(_ us: Double) -> Double { (us * 100).rounded() / 100 }

    /// A document's size in bytes (its first four bytes, little-endian).
    private static func bsonLength(_ doc: OpaquePointer) -> Int {
        let data = bson_get_data(doc)!
        return Int(data[0]) | Int(data[1]) << 8 | Int(data[2]) << 16 | Int(data[3]) << 24
    }
}
