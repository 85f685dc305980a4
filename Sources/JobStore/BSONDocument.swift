import CMongoC
import Foundation
import RunnerCore

/// Owns one heap `bson_t`; destroyed in deinit. Use `pointer` only while the
/// owner is certainly alive: in its own methods, `withPointer`, or `withExtendedLifetime`. Built from a JSONValue with
/// libbson's appenders (BSONEncoding) and read back with its iterators
/// (BSONDecoding): no JSON text on the way (docs/architecture.md, BSON).
final class BSONDocument {
    let pointer: OpaquePointer

    /// An empty document to append to.
    init() {
        pointer = bson_new()
    }

    /// `json`, which must be an object, built member by member.
    init(_ json: JSONValue) throws {
        guard case .object(let members) = json else {
            throw MongoError(message: "a BSON document must be a JSON object, not \(json.typeName)", operation: "BSON")
        }
        let p: OpaquePointer = bson_new()
        do {
            try BSONEncoding.appendMembers(members, to: p)
        } catch let failure as EncodingFailure {
            bson_destroy(p)
            throw failure.mongoError
        } catch {
            bson_destroy(p)
            throw error
        }
        pointer = p
    }

    /// Parsed by libbson's Extended JSON reader: for ordered constant text
    /// (the claim's sort, index specs), typed values BSONEncoding does not
    /// build itself, and the benchmark's text path.
    init(extendedJSON text: String) throws {
        var error = bson_error_t()
        guard let p = bson_new_from_json(text, text.utf8.count, &error) else { throw MongoError(error, "bson_new_from_json") }
        pointer = p
    }

    deinit { bson_destroy(pointer) }

    /// Runs `body` with the `bson_t`, this owner kept alive until it returns
    /// (a caller holding only `pointer` could see the document freed first).
    func withPointer<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        try withExtendedLifetime(self) { try body(pointer) }
    }

    /// Appends `value` as `key` (after the members already there).
    func append(_ key: String, _ value: JSONValue) throws {
        do {
            try BSONEncoding.append(value, key: key, to: pointer)
        } catch let failure as EncodingFailure {
            throw failure.mongoError
        }
    }

    /// Appends a copy of `document` as the sub-document `key`.
    func append(_ key: String, document: BSONDocument) throws {
        guard bson_append_document(pointer, key, Int32(key.utf8.count), document.pointer) else {
            throw EncodingFailure(path: [key], reason: "the document outgrows BSON's maximum size").mongoError
        }
    }

    /// This document as a JSONValue.
    func json() throws -> JSONValue { try Self.json(of: pointer) }

    /// A borrowed `bson_t` as a JSONValue, read with libbson's iterators; the
    /// same value its relaxed Extended JSON would parse to (BSONDecoding).
    static func json(of doc: OpaquePointer) throws -> JSONValue {
        try BSONDecoding.object(of: doc)
    }

    /// The text path: relaxed Extended JSON of a borrowed `bson_t`, parsed.
    /// For the types BSONDecoding leaves to libbson, and the benchmark.
    static func jsonViaText(of doc: OpaquePointer) throws -> JSONValue {
        var length = 0
        guard let cString = bson_as_relaxed_extended_json(doc, &length) else {
            throw MongoError(message: "document is not representable as JSON", operation: "bson_as_json")
        }
        defer { bson_free(cString) }
        return try JSONValue.parse(Data(bytes: cString, count: length))
    }
}

/// Runs `body` with 128 bytes aligned to 128 on the stack: the size and
/// alignment of libbson's `bson_t` and `bson_iter_t` (its ABI), which Swift
/// sees as opaque. The one place that knows them.
func withLibbsonStruct<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
    try withUnsafeTemporaryAllocation(byteCount: 128, alignment: 128) { raw in
        try body(OpaquePointer(raw.baseAddress!))
    }
}

/// Runs `body` with a caller-owned, initialised `bson_t` for libmongoc's
/// out-parameter replies, destroying it afterwards.
func withReply<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
    try withLibbsonStruct { reply in
        bson_init(reply)
        defer { bson_destroy(reply) }
        return try body(reply)
    }
}
