import CMongoC
import RunnerCore

/// BSON to JSONValue with libbson's `bson_iter_*` iterators, no JSON text in
/// between. The result is the value that relaxed Extended JSON
/// (`bson_as_relaxed_extended_json`) parsed by `JSONValue.parse` gave, so
/// nothing above the store sees a difference (BSONConversionTests compares
/// them):
/// - int32 and int64 are `.int`; a double is `.int` when it is integral and
///   inside Int64 (the decoder read libbson's "3.0" that way), else `.double`;
///   a non-finite double is `{"$numberDouble": "NaN" | "Infinity" | "-Infinity"}`;
/// - an ObjectId is `{"$oid": hex}`; a date is `{"$date": "YYYY-MM-DDTHH:MM:SS[.mmm]Z"}`
///   from 1970 on (libbson 1.23 writes years past 9999 too), else
///   `{"$date": {"$numberLong": ms}}`;
/// - any other type (decimal128, binary, regex, timestamp, code, symbol,
///   min/max key, undefined, DBPointer) is whatever libbson's relaxed
///   Extended JSON writes for it, made by libbson itself;
/// - a string or key that is not UTF-8 is an error, as it was for the text.
enum BSONDecoding {
    /// Runs `body` with a `bson_iter_t` on the stack.
    static func withIterator<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        try withLibbsonStruct(body)
    }

    /// The borrowed document `doc` as an object.
    static func object(of doc: OpaquePointer) throws -> JSONValue {
        try withIterator { it in
            guard bson_iter_init(it, doc) else { throw corrupt }
            return .object(try members(it))
        }
    }

    static let corrupt = MongoError(message: "document is not representable as JSON (corrupt BSON)",
                                    operation: "bson_as_json")

    /// The members after `it` (positioned before the first).
    private static func members(_ it: OpaquePointer) throws -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        while bson_iter_next(it) {
            guard let key = text(UnsafeRawPointer(bson_iter_key(it)), Int(bson_iter_key_len(it))) else {
                throw notUTF8
            }
            out[key] = try value(it)
        }
        guard !cmongoc_bson_iter_failed(it) else { throw corrupt }
        return out
    }

    /// The elements after `it`, in order (their keys are the indexes).
    private static func elements(_ it: OpaquePointer) throws -> [JSONValue] {
        var out: [JSONValue] = []
        while bson_iter_next(it) { out.append(try value(it)) }
        guard !cmongoc_bson_iter_failed(it) else { throw corrupt }
        return out
    }

    /// The value `it` is on.
    private static func value(_ it: OpaquePointer) throws -> JSONValue {
        switch bson_iter_type(it) {
        case BSON_TYPE_UTF8:
            var length: UInt32 = 0
            guard let s = text(UnsafeRawPointer(bson_iter_utf8(it, &length)), Int(length)) else { throw notUTF8 }
            return .string(s)
        case BSON_TYPE_INT32: return .int(Int64(bson_iter_int32(it)))
        case BSON_TYPE_INT64: return .int(bson_iter_int64(it))
        case BSON_TYPE_DOUBLE: return number(bson_iter_double(it))
        case BSON_TYPE_BOOL: return .bool(bson_iter_bool(it))
        case BSON_TYPE_NULL: return .null
        case BSON_TYPE_DOCUMENT:
            return try withIterator { child in
                guard bson_iter_recurse(it, child) else { throw corrupt }
                return .object(try members(child))
            }
        case BSON_TYPE_ARRAY:
            return try withIterator { child in
                guard bson_iter_recurse(it, child) else { throw corrupt }
                return .array(try elements(child))
            }
        case BSON_TYPE_OID:
            var hex = [CChar](repeating: 0, count: 25)
            bson_oid_to_string(bson_iter_oid(it), &hex)
            return ["$oid": .string(String(decoding: hex.prefix(24).map { UInt8(bitPattern: $0) }, as: UTF8.self))]
        case BSON_TYPE_DATE_TIME: return date(bson_iter_date_time(it))
        default: return try viaText(it)
        }
    }

    static let notUTF8 = MongoError(message: "document is not representable as JSON (a string or key is not UTF-8)",
                                    operation: "bson_as_json")

    /// Validated UTF-8 (libbson allows a NUL inside a string, as JSON's \u0000 did).
    private static func text(_ bytes: UnsafeRawPointer?, _ count: Int) -> String? {
        guard let bytes else { return nil }
        return String(validating: UnsafeRawBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    /// A double as relaxed Extended JSON read back: libbson writes an integral
    /// double as "N.0", which the JSON decoder reads as an Int64 when it fits
    /// (it refused exactly -2^63 as text, so that stays a double).
    static func number(_ d: Double) -> JSONValue {
        guard d.isFinite else { return ["$numberDouble": .string(d.isNaN ? "NaN" : d < 0 ? "-Infinity" : "Infinity")] }
        if d == d.rounded(.towardZero), d > -9.223372036854775808e18, d < 9.223372036854775808e18 {
            return .int(Int64(d))
        }
        return .double(d)
    }

    /// A date as relaxed Extended JSON writes it.
    static func date(_ ms: Int64) -> JSONValue {
        guard ms >= 0 else { return ["$date": ["$numberLong": .string(String(ms))]] }
        let seconds = ms / 1000, millis = Int(ms % 1000)
        let days = Int(seconds / 86_400), secondOfDay = Int(seconds % 86_400)
        // Civil date from days since the epoch (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        var out: [UInt8] = []
        out.reserveCapacity(24)
        func digits(_ n: Int, _ width: Int) {
            // At least `width` digits, more when `n` needs them (a year past 9999).
            var divisor = 1, used = 1
            while used < width || divisor <= n / 10 {
                divisor *= 10
                used += 1
            }
            while divisor > 0 {
                out.append(UInt8(48 + (n / divisor) % 10))
                divisor /= 10
            }
        }
        digits(year, 4); out.append(UInt8(ascii: "-")); digits(month, 2); out.append(UInt8(ascii: "-")); digits(day, 2)
        out.append(UInt8(ascii: "T")); digits(secondOfDay / 3600, 2); out.append(UInt8(ascii: ":"))
        digits(secondOfDay / 60 % 60, 2); out.append(UInt8(ascii: ":")); digits(secondOfDay % 60, 2)
        if millis != 0 { out.append(UInt8(ascii: ".")); digits(millis, 3) }
        out.append(UInt8(ascii: "Z"))
        return ["$date": .string(String(decoding: out, as: UTF8.self))]
    }

    /// A rare type: `{"v": value}` written as relaxed Extended JSON by libbson and parsed.
    private static func viaText(_ it: OpaquePointer) throws -> JSONValue {
        try BSONDocument().withPointer { wrapper in
            guard bson_append_iter(wrapper, "v", 1, it) else { throw corrupt }
            return try BSONDocument.jsonViaText(of: wrapper)["v"] ?? .null
        }
    }
}
