import CMongoC
import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Issue 17, item 4: the store builds BSON with libbson's appenders and reads
/// it with its iterators. Each test holds the new path to the text path it
/// replaced (`bson_new_from_json` of `jsonString`, and relaxed Extended JSON
/// parsed by `JSONValue.parse`) through the real libbson, then through the
/// real database.
@Suite struct BSONConversionTests {
    /// Values the store may write: every JSON type, Extended JSON types,
    /// query and update operators, awkward keys and strings.
    static let writable: [String: JSONValue] = [
        "strings": ["plain": "text", "empty": "", "unicode": "héllo wörld ✓ 日本語 🚀 \u{2028} Ω",
                    "escapes": "quote \" back \\ slash \n newline \t tab \r \u{01} ctrl \u{7f} del / slash",
                    "nulInside": "a\u{0}b", "long": .string(String(repeating: "ab✓", count: 5000))],
        "ints": ["zero": 0, "one": 1, "negative": -1, "int32Max": .int(Int64(Int32.max)), "int32Min": .int(Int64(Int32.min)),
                 "aboveInt32": .int(Int64(Int32.max) + 1), "belowInt32": .int(Int64(Int32.min) - 1),
                 "int64Max": .int(.max), "int64Min": .int(.min), "big": 1_234_567_890_123_456_789],
        "doubles": ["half": .double(1.5), "negative": .double(-0.25), "integral": .double(3), "negativeZero": .double(-0.0),
                    "tenth": .double(0.1), "pi": .double(.pi), "tiny": .double(5e-324), "large": .double(1.2345678901234567e15),
                    "e20": .double(1e20), "huge": .double(.greatestFiniteMagnitude), "twoTo63": .double(9.223372036854775808e18),
                    "minusTwoTo63": .double(-9.223372036854775808e18), "notInt": .double(123_456_789_012_345_678)],
        "literals": ["true": true, "false": false, "null": nil],
        "nested": ["a": ["b": ["c": [1, [2, [3, ["d": "deep"]]], [] as JSONValue], "empty": [:] as JSONValue]]],
        "array": [1, "two", .double(3.5), nil, true, ["k": "v"], [[] as JSONValue], ["$oid": "00112233445566778899aabb"]],
        "ids": ["oid": ["$oid": "0123456789abcdef01234567"], "upper": ["$oid": "0123456789ABCDEF01234567"]],
        "dates": ["recent": .date(Date(timeIntervalSince1970: 1_700_000_000.123)), "epoch": .date(Date(timeIntervalSince1970: 0)),
                  "before1970": .date(Date(timeIntervalSince1970: -946_080_000.5)), "justBefore": ["$date": ["$numberLong": "-1"]],
                  "wholeSecond": ["$date": ["$numberLong": "1000"]], "last": ["$date": ["$numberLong": "253402300799999"]],
                  "year10000": ["$date": ["$numberLong": "253402300800000"]], "iso": ["$date": "2020-02-29T12:00:00Z"],
                  "year1": ["$date": ["$numberLong": "-62135596800000"]]],
        "numbers": ["long": ["$numberLong": "42"], "longMin": ["$numberLong": "-9223372036854775808"],
                    "int": ["$numberInt": "7"], "double": ["$numberDouble": "2.5"]],
        "keys": ["": 1, "ключ": "значение", "emoji🔑": 2, "with space": 3, "dotted.key": 4, "$notAType": ["x": 1],
                 "Zupper": 5, "lower": 6, "10": 7, "9": 8],
        "query": ["$or": [["status": "pending"], ["lease.expiresAt": ["$lt": .date(Date(timeIntervalSince1970: 1e9))]]],
                  "name": ["$regex": "^a.c", "$options": "i"], "idAndPattern": ["$eq": "y", "$regex": "z"],
                  "floor": ["$gte": ["$numberDouble": "-Infinity"]], "in": ["$in": [["$oid": "0123456789abcdef01234567"], "x"]]],
        "update": ["$push": ["logs": ["$each": ["l1", "l2"], "$slice": -1000]], "$set": ["updatedAt": .date(Date())],
                   "$inc": ["attempts": 1], "$unset": ["lease": ""]],
        "serverTypes": ["decimal": ["$numberDecimal": "1.10"], "binary": ["$binary": ["base64": "AAEC", "subType": "00"]],
                        "uuid": ["$uuid": "00112233-4455-6677-8899-aabbccddeeff"], "timestamp": ["$timestamp": ["t": 1, "i": 2]],
                        "minKey": ["$minKey": 1], "maxKey": ["$maxKey": 1], "code": ["$code": "f()"], "symbol": ["$symbol": "s"],
                        "undefined": ["$undefined": true], "regex": ["$regularExpression": ["pattern": "p", "options": "im"]]],
    ]

    /// Values JSON text turned into something else: a non-finite double was written as null.
    static let lossy: [String: JSONValue] = ["nan": .double(.nan), "infinity": .double(.infinity), "minusInfinity": .double(-.infinity)]

    /// Whether two documents hold the same bytes (both kept alive meanwhile).
    static func same(_ a: BSONDocument, _ b: BSONDocument) -> Bool {
        withExtendedLifetime((a, b)) { bson_equal(a.pointer, b.pointer) }
    }

    /// The text path's BSON for `value`.
    static func textBSON(_ value: JSONValue) throws -> BSONDocument { try BSONDocument(extendedJSON: value.jsonString) }

    @Test func builderMakesTheSameBytesAsTheJSONText() throws {
        for (name, value) in Self.writable.merging(Self.lossy, uniquingKeysWith: { a, _ in a }) {
            let doc: JSONValue = [name: value]
            let built = try BSONDocument(doc), parsed = try Self.textBSON(doc)
            #expect(Self.same(built, parsed), "\(name): builder and text differ")
        }
        let all = try BSONDocument(.object(Self.writable))
        #expect(Self.same(all, try Self.textBSON(.object(Self.writable))))
        // Keys in sorted order, as the text had them (a command's name sorts first here).
        let cmd = try BSONDocument(["listCollections": 1, "nameOnly": true, "filter": [:]])
        #expect(try cmd.withPointer(BSONDocument.jsonViaText) == ["filter": [:], "listCollections": 1, "nameOnly": true])
        #expect(Self.same(cmd, try BSONDocument(extendedJSON: #"{"filter":{},"listCollections":1,"nameOnly":true}"#)))
    }

    @Test func iteratorsReadWhatTheTextGave() throws {
        for (name, value) in Self.writable {
            let doc = try Self.textBSON([name: value])
            #expect(try doc.json() == doc.withPointer(BSONDocument.jsonViaText), "\(name)")
        }
        // Types only the server writes, and doubles and dates at their edges, from canonical Extended JSON.
        let canonical = #"""
        {"d": [{"$numberDouble": "1.0"}, {"$numberDouble": "-0.0"}, {"$numberDouble": "1e20"}, {"$numberDouble": "NaN"},
               {"$numberDouble": "Infinity"}, {"$numberDouble": "-Infinity"}, {"$numberDouble": "-9.223372036854775808E+18"},
               {"$numberDouble": "9.2233720368547748E+18"}, {"$numberDouble": "123456789012345678"}, {"$numberDouble": "0.1"},
               {"$numberDouble": "5e-324"}, {"$numberDouble": "1.7976931348623157E+308"}, {"$numberDouble": "-4.5"}],
         "dates": [{"$date": {"$numberLong": "-1"}}, {"$date": {"$numberLong": "0"}}, {"$date": {"$numberLong": "999"}},
                   {"$date": {"$numberLong": "1000"}}, {"$date": {"$numberLong": "951825600000"}},
                   {"$date": {"$numberLong": "253402300799999"}}, {"$date": {"$numberLong": "253402300800000"}},
                   {"$date": {"$numberLong": "-62135596800000"}}, {"$date": {"$numberLong": "-9223372036854775808"}}],
         "decimal": {"$numberDecimal": "-1.5E+40"}, "uuid": {"$binary": {"base64": "ABEiM0RVZneImaq7zN3u/w==", "subType": "04"}},
         "regex": {"$regularExpression": {"pattern": "^a\"b", "options": "ix"}}, "ts": {"$timestamp": {"t": 4294967295, "i": 7}},
         "min": {"$minKey": 1}, "max": {"$maxKey": 1}, "code": {"$code": "f()"}, "symbol": {"$symbol": "s"},
         "scope": {"$code": "g()", "$scope": {"x": 1}}, "undefined": {"$undefined": true},
         "pointer": {"$dbPointer": {"$ref": "c", "$id": {"$oid": "0123456789abcdef01234567"}}},
         "int32": {"$numberInt": "-2147483648"}, "int64": {"$numberLong": "9223372036854775807"}}
        """#
        let doc = try BSONDocument(extendedJSON: canonical)
        let fast = try doc.json(), text = try doc.withPointer(BSONDocument.jsonViaText)
        for key in text.objectValue!.keys { #expect(fast[key] == text[key], "\(key)") }
        #expect(fast == text)
        #expect(fast["d"]?.arrayValue?[0] == 1 && fast["d"]?.arrayValue?[2] == .double(1e20))
        #expect(fast["dates"]?.arrayValue?[1] == ["$date": "1970-01-01T00:00:00Z"])
        #expect(fast["dates"]?.arrayValue?[4] == ["$date": "2000-02-29T12:00:00Z"])
        #expect(fast["dates"]?.arrayValue?[6] == ["$date": "10000-01-01T00:00:00Z"])
        #expect(fast["dates"]?.arrayValue?[7] == ["$date": ["$numberLong": "-62135596800000"]])
        #expect(fast["decimal"] == ["$numberDecimal": "-1.5E+40"])
    }

    /// Many dates and doubles, spread over their ranges (a fixed sequence).
    @Test func datesAndDoublesMatchTheTextAcrossTheirRange() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let doc = BSONDocument()
        for i in 0..<3000 {
            let ms: Int64 = i % 3 == 0 ? Int64(bitPattern: next()) % 400_000_000_000_000 : Int64(next() % 253_402_300_800_000)
            #expect(doc.withPointer { bson_append_date_time($0, "d\(i)", -1, i % 7 == 0 ? ms / 1000 * 1000 : ms) })
            let bits = next()
            let d = i % 2 == 0 ? Double(bitPattern: bits) : Double(Int64(bitPattern: bits) >> Int64(bits % 64))
            #expect(doc.withPointer { bson_append_double($0, "x\(i)", -1, d) })
        }
        let fast = try doc.json(), text = try doc.withPointer(BSONDocument.jsonViaText)
        for (key, value) in text.objectValue! where fast[key] != value {
            // NaN is the one value unequal to itself: compare its text.
            #expect(fast[key]?.jsonString == value.jsonString, "\(key): \(fast[key]?.jsonString ?? "-") vs \(value.jsonString)")
        }
    }

    @Test func whatBSONCannotHoldIsAClearError() throws {
        func message(_ value: JSONValue) -> String? {
            do { _ = try BSONDocument(value); return nil } catch let e as MongoError {
                #expect(!e.isOutage)
                return e.description
            } catch { return "\(error)" }
        }
        #expect(message(["a\u{0}b": 1])?.contains(#"field "a\0b""#) == true)
        #expect(message(["a\u{0}b": 1])?.contains("NUL") == true)
        #expect(message(["outer": ["list": [1, ["in\u{0}ner": true]]]])?.contains(#"field "outer.list.1.in\0ner""#) == true)
        #expect(message(["id": ["$oid": "not-an-object-id"]])?.contains(#"field "id" as BSON: $oid is malformed"#) == true)
        #expect(message(["n": ["$numberLong": "12x"]])?.contains("$numberLong is malformed") == true)
        #expect(message(["d": ["$date": ["$numberLong": "1"], "extra": 1]])?.contains(#"field "d""#) == true)
        #expect(message(.array([1, 2]))?.contains("must be a JSON object, not array") == true)
        #expect(message("text")?.contains("not string") == true)
        // What the store cannot read back: a string that is not UTF-8 (the text path refused it too).
        let bad = BSONDocument()
        let bytes: [CChar] = [CChar(bitPattern: 0xff), CChar(bitPattern: 0xfe), 0]
        #expect(bad.withPointer { bson_append_utf8($0, "s", 1, "\u{7f}", 1) && bson_append_utf8($0, "t", 1, bytes, 2) })
        #expect(throws: MongoError.self) { try bad.json() }
        #expect(throws: MongoError.self) { try bad.withPointer(BSONDocument.jsonViaText) }
        #expect((try? bad.json()) == nil)
    }

    /// Through the real database: written with the store's API, read back,
    /// equal to what the text path gave, found by queries on typed values.
    @Test func everyTypeSurvivesTheDatabase() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        var spec = Self.writable
        spec.removeValue(forKey: "query")  // operators are not field names in stored documents
        spec.removeValue(forKey: "update")
        // libmongoc refuses empty, dotted and $-prefixed keys in an insert (the text path too).
        spec["keys"] = .object(Self.writable["keys"]!.objectValue!.filter {
            !$0.key.isEmpty && !$0.key.hasPrefix("$") && !$0.key.contains(".")
        })
        // The test server (Python) holds no date past year 9999, and stores the
        // deprecated undefined and symbol as null and string (libbson's are tested above).
        spec["dates"] = .object(Self.writable["dates"]!.objectValue!.filter { $0.key != "year10000" })
        spec["serverTypes"] = .object(Self.writable["serverTypes"]!.objectValue!.filter { $0.key != "undefined" && $0.key != "symbol" })
        let specValue = JSONValue.object(spec)
        let projectId = try await h.store.insertProject(name: "BSON ✓", repoURL: nil)
        let id = try await h.store.insertJob(projectId: projectId, spec: specValue, id: ["$oid": "5f0123456789abcdef012345"])
        #expect(id == "5f0123456789abcdef012345")
        let stored = try await h.job(id)
        let expected = try Self.textBSON(specValue).withPointer(BSONDocument.jsonViaText)
        #expect(stored["architecture_spec"] == expected)
        #expect(stored["_id"] == ["$oid": "5f0123456789abcdef012345"])
        let back = try #require(stored["architecture_spec"])
        #expect(back["ints"]?["int64Max"] == .int(.max) && back["ints"]?["int64Min"] == .int(.min))
        #expect(back["ints"]?["big"] == 1_234_567_890_123_456_789)
        #expect(back["strings"]?["unicode"] == "héllo wörld ✓ 日本語 🚀 \u{2028} Ω")
        #expect(back["strings"]?["nulInside"] == "a\u{0}b")
        #expect(back["dates"]?["before1970"] == ["$date": ["$numberLong": "-946080000500"]])
        #expect(back["dates"]?["before1970"]?.dateValue == Date(timeIntervalSince1970: -946_080_000.5))
        #expect(back["dates"]?["recent"] == ["$date": "2023-11-14T22:13:20.123Z"])
        #expect(back["ids"]?["upper"] == ["$oid": "0123456789abcdef01234567"])
        #expect(back["nested"]?["a"]?["b"]?["c"]?.arrayValue?[1] == [2, [3, ["d": "deep"]]])
        #expect(back["serverTypes"]?["decimal"] == ["$numberDecimal": "1.10"])

        // Queries with typed values match the stored types.
        let name = h.store.jobsName
        let queries: [JSONValue] = [
            ["_id": ["$oid": "5F0123456789ABCDEF012345"]],
            ["architecture_spec.dates.before1970": ["$lt": .date(Date(timeIntervalSince1970: 0))]],
            ["architecture_spec.ints.int64Max": ["$numberLong": "9223372036854775807"]],
            ["architecture_spec.ids.oid": ["$in": [["$oid": "0123456789abcdef01234567"]]]],
            ["architecture_spec.strings.unicode": ["$regex": "^HÉLLO", "$options": "i"]],
            ["architecture_spec.doubles.tenth": .double(0.1)],
        ]
        for query in queries {
            let n = try await h.store.pool.run(name) { try CollectionOps.count($0, filter: query) }
            #expect(n == 1, "\(query.jsonString)")
        }
    }

    /// The hot calls: claim, lease renewal, batched progress, finish, read back.
    @Test func claimHeartbeatAndLogsRoundTrip() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let projectId = try await h.store.insertProject(name: "Hot", repoURL: nil)
        let id = try await h.store.insertJob(projectId: projectId, spec: tinySpec)
        let job = try #require(try await h.store.claim(owner: "bson-test", leaseSeconds: 3600))
        #expect(job.idText == id && job.document["architecture_spec"] == tinySpec)
        #expect(job.document["createdAt"]?.dateValue != nil)
        let lines = ["plain", "unicode ✓ 日本語 🚀", "quote \" and \\ and \t", "", String(repeating: "x", count: 10_000)]
        #expect(try await h.store.writeProgress([ProgressUpdate(job: job, stage: .generating, lines: lines)]) == 1)
        #expect(try await h.store.renewLeases([job.token], leaseSeconds: 120).held == [job.token: false])
        let doc = try await h.job(id)
        #expect(doc["stage"] == "generating")
        #expect(doc["logs"]?.arrayValue?.compactMap(\.stringValue) == lines)
        let expires = try #require(doc["lease"]?["expiresAt"]?.dateValue)
        #expect(expires.timeIntervalSinceNow > 60 && expires.timeIntervalSinceNow <= 121)
        #expect(try await h.store.finish(job, .done(JobMetadata())))
        #expect(try await h.job(id)["status"] == "done")
    }

    /// A failure's usage goes to `metadata.usage`: a job whose `metadata`
    /// the app wrote as null (or anything but a document) still gets its
    /// outcome, with a `metadata` holding the usage.
    @Test func anOutcomeIsWrittenWhateverTheAppLeftInMetadata() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let projectId = try await h.store.insertProject(name: "Meta", repoURL: "https://github.com/acme/meta.git")
        for (n, metadata) in [JSONValue.null, "x", [1, 2]].enumerated() {
            let id = try await h.store.insertJob(projectId: projectId, spec: tinySpec)
            _ = try await h.store.pool.run("jobs") {
                try CollectionOps.update($0, filter: ["_id": .string(id)], update: ["$set": ["metadata": metadata]])
            }
            let job = try #require(try await h.store.claim(owner: "meta-test", leaseSeconds: 3600))
            #expect(job.idText == id)
            let usage: JSONValue = ["requests": .int(Int64(n + 1))]
            #expect(try await h.store.finish(job, .failed(JobFailure(.timeout, "too slow")), usage: usage))
            let doc = try await h.job(id)
            #expect(doc["status"] == "failed" && doc["error"]?["code"] == "timeout", "\(doc.jsonString)")
            #expect(doc["metadata"] == ["usage": usage], "\(doc.jsonString)")
        }
    }
}
