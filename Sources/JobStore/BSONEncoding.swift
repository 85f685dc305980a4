import CMongoC
import Foundation
import RunnerCore

/// JSONValue to BSON with libbson's `bson_append_*` builders, no JSON text in
/// between. The BSON is the same, byte for byte, as `bson_new_from_json` made
/// of `jsonString` (BSONConversionTests compares them):
/// - object keys in sorted order (a command's name sorts first, and the
///   claim's sort is ordered text, not a JSONValue);
/// - an integer as int32 when it fits, else int64; a non-finite double as null
///   (`jsonString` writes null);
/// - an object whose first key is one of libbson's Extended JSON type keys is
///   that type: `{"$oid"}`, `{"$date": {"$numberLong"}}` and `{"$numberLong"}`
///   are built here (the hot ones); any other (`$regex` with `$options`,
///   `$numberDouble`, `$binary`, …) goes through libbson's own JSON reader,
///   which also reports a malformed one.
enum BSONEncoding {
    /// The keys with which libbson's JSON reader begins a typed value (a
    /// superset: DBRef's keys are plain, and the reader decides that too).
    /// Spelled without their "$" here: they are types the reader recognises,
    /// not operators the store sends (PortableQueryTests scans for those).
    static let typeKeys: Set<String> = Set([
        "oid", "date", "numberLong", "numberInt", "numberDouble", "numberDecimal", "binary", "type",
        "uuid", "regex", "options", "regularExpression", "timestamp", "code", "scope", "symbol",
        "minKey", "maxKey", "undefined", "dbPointer", "ref", "id", "db",
    ].map { "$" + $0 })

    /// Appends the members of `object` (sorted by key) to `doc`.
    static func appendMembers(_ object: [String: JSONValue], to doc: OpaquePointer) throws {
        if object.count == 1, let (key, value) = object.first {
            try append(value, key: key, to: doc)
            return
        }
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            try append(value, key: key, to: doc)
        }
    }

    /// Appends `value` as `key` (a member name or an array index).
    static func append(_ value: JSONValue, key: String, to doc: OpaquePointer) throws {
        let length = Int32(truncatingIfNeeded: key.utf8.count)
        let ok = try key.withCString { k in try append(value, key: k, length: length, to: doc, name: key) }
        guard ok else { throw failure(key: key) }
    }

    /// Appends `array`'s elements under the keys "0", "1", ….
    static func appendElements(_ array: [JSONValue], to doc: OpaquePointer) throws {
        try withUnsafeTemporaryAllocation(of: CChar.self, capacity: 16) { buffer in
            for (index, element) in array.enumerated() {
                var key: UnsafePointer<CChar>?
                let length = bson_uint32_to_string(UInt32(index), &key, buffer.baseAddress, 16)
                guard let key, try append(element, key: key, length: Int32(length), to: doc, name: String(index))
                else { throw failure(key: String(index)) }
            }
        }
    }

    /// One value; false when libbson refuses the key (a NUL in it) or the
    /// document outgrows BSON's size (`failure` tells which).
    private static func append(_ value: JSONValue, key: UnsafePointer<CChar>, length: Int32, to doc: OpaquePointer,
                               name: @autoclosure () -> String) throws -> Bool {
        switch value {
        case .null:
            return bson_append_null(doc, key, length)
        case .bool(let b):
            return bson_append_bool(doc, key, length, b)
        case .int(let i):
            if let small = Int32(exactly: i) { return bson_append_int32(doc, key, length, small) }
            return bson_append_int64(doc, key, length, i)
        case .double(let d):
            return d.isFinite ? bson_append_double(doc, key, length, d) : bson_append_null(doc, key, length)
        case .string(let s):
            let count = Int32(truncatingIfNeeded: s.utf8.count)
            return s.withCString { bson_append_utf8(doc, key, length, $0, count) }
        case .array(let elements):
            return try nested(doc, key, length, array: true, name: name) { try appendElements(elements, to: $0) }
        case .object(let members):
            do {
                if let typed = try typedValue(members) { return typed.append(to: doc, key: key, length: length) }
            } catch var failure as EncodingFailure {
                failure.path.insert(name(), at: 0)
                throw failure
            }
            return try nested(doc, key, length, array: false, name: name) { try appendMembers(members, to: $0) }
        }
    }

    /// A child document or array built in place (no copy), ended even when
    /// `body` throws so that the parent stays valid for its owner to destroy.
    private static func nested(_ parent: OpaquePointer, _ key: UnsafePointer<CChar>, _ length: Int32, array: Bool,
                               name: () -> String, _ body: (OpaquePointer) throws -> Void) throws -> Bool {
        // The child `bson_t` lives on the stack.
        try withLibbsonStruct { child in
            let began = array ? bson_append_array_begin(parent, key, length, child)
                : bson_append_document_begin(parent, key, length, child)
            guard began else { return false }
            var thrown: Error?
            do { try body(child) } catch var failure as EncodingFailure {
                failure.path.insert(name(), at: 0)
                thrown = failure
            } catch { thrown = error }
            let ended = array ? bson_append_array_end(parent, child) : bson_append_document_end(parent, child)
            if let thrown { throw thrown }
            return ended
        }
    }

    /// A value written as an Extended JSON type, or nil for a plain object.
    private static func typedValue(_ members: [String: JSONValue]) throws -> TypedValue? {
        guard let first = members.count == 1 ? members.first!.key : members.keys.min(),
              first.utf8.first == UInt8(ascii: "$"), typeKeys.contains(first) else { return nil }
        if members.count == 1 {
            let inner = members[first]!
            switch first {
            case "$oid":
                if let hex = inner.stringValue, hex.utf8.count == 24, hex.utf8.allSatisfy(isHexDigit) {
                    var oid = bson_oid_t()
                    bson_oid_init_from_string(&oid, hex)
                    return .objectId(oid)
                }
            case "$date":
                if case .object(let o) = inner, o.count == 1, let text = o["$numberLong"]?.stringValue,
                   let ms = Int64(text) {
                    return .dateTime(ms)
                }
            case "$numberLong":
                if let text = inner.stringValue, let n = Int64(text) { return .int64(n) }
            default: break
            }
        }
        do {
            return .parsed(try BSONDocument(extendedJSON: #"{"v":"# + JSONValue.object(members).jsonString + "}"))
        } catch let error as MongoError {
            throw EncodingFailure(path: [], reason: "\(first) is malformed (\(error.message))")
        }
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
    }

    /// Why an append failed: libbson refuses a key with a NUL, or a document past 2 GB.
    private static func failure(key: String) -> EncodingFailure {
        EncodingFailure(path: [key], reason: key.utf8.contains(0) ? "the key contains a NUL character, which BSON cannot hold"
            : "the document outgrows BSON's maximum size")
    }
}

/// A value that cannot become BSON, with the keys leading to it (filled in on
/// the way out, so a successful build never assembles a path).
struct EncodingFailure: Error {
    var path: [String]
    let reason: String

    var mongoError: MongoError {
        let field = path.map { $0.replacingOccurrences(of: "\0", with: "\\0") }.joined(separator: ".")
        return MongoError(message: "cannot encode field \"\(field)\" as BSON: \(reason)", operation: "BSON")
    }
}

/// An Extended JSON type ready to append.
private enum TypedValue {
    case objectId(bson_oid_t)
    case dateTime(Int64)
    case int64(Int64)
    /// `{"v": value}` as libbson's JSON reader built it.
    case parsed(BSONDocument)

    func append(to doc: OpaquePointer, key: UnsafePointer<CChar>, length: Int32) -> Bool {
        switch self {
        case .objectId(var oid): return bson_append_oid(doc, key, length, &oid)
        case .dateTime(let ms): return bson_append_date_time(doc, key, length, ms)
        case .int64(let n): return bson_append_int64(doc, key, length, n)
        case .parsed(let wrapper):
            return BSONDecoding.withIterator { it in
                bson_iter_init(it, wrapper.pointer) && bson_iter_next(it) && bson_append_iter(doc, key, length, it)
            }
        }
    }
}
