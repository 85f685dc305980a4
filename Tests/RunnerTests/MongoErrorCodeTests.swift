import CMongoC
import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// What the store learns from libmongoc it learns from parsed values and
/// error codes, never from text: whether the URI sets a timeout, and whether
/// a write failed on a duplicate key.
@Suite struct MongoErrorCodeTests {
    func socketTimeout(_ uri: String) throws -> Int32 {
        let pool = try MongoPool(uri: uri, databaseName: "unused")
        return mongoc_uri_get_option_as_int32(pool.uri, MONGOC_URI_SOCKETTIMEOUTMS, -1)
    }

    @Test func theDefaultTimeoutHoldsUnlessTheURISetsTheOption() throws {
        // An option's name in the password (or the host) is not the option.
        #expect(try socketTimeout("mongodb://user:sockettimeoutms@127.0.0.1:1/") == MongoPool.defaultSocketTimeoutMS)
        #expect(try socketTimeout("mongodb://user:socketTimeoutMS%3D5@127.0.0.1:1/?appname=x")
                == MongoPool.defaultSocketTimeoutMS)
        // The option itself, in any case, is the operator's.
        #expect(try socketTimeout("mongodb://127.0.0.1:1/?socketTimeoutMS=1234") == 1234)
        #expect(try socketTimeout("mongodb://127.0.0.1:1/?SOCKETTIMEOUTMS=4321") == 4321)
    }

    @Test func aDuplicateKeyIsKnownByTheServersCodeAlone() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // The server's own answer to a second insert of one _id.
        try await h.store.pool.run("dups") { try CollectionOps.insert($0, ["_id": "one", "note": "duplicate key"]) }
        var caught: MongoError?
        do {
            try await h.store.pool.run("dups") { try CollectionOps.insert($0, ["_id": "one"]) }
        } catch let e as MongoError {
            caught = e
        }
        let e = try #require(caught, "the second insert of one _id failed")
        #expect(e.isDuplicateKey, "\(e) (domain \(e.domain), code \(e.code))")
        // A message that merely reads like one is not one: the text is never consulted.
        #expect(!MongoError(message: "E11000 duplicate key error collection: x", operation: "insert").isDuplicateKey)
        var other = bson_error_t()
        other.domain = MONGOC_ERROR_SERVER.rawValue
        other.code = 2
        withUnsafeMutableBytes(of: &other.message) { raw in
            for (i, b) in "E11000 duplicate key error".utf8.enumerated() { raw[i] = b }
        }
        #expect(!MongoError(other, "update").isDuplicateKey)
    }
}
