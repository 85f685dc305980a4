import CMongoC
import RunnerCore

/// Synchronous libmongoc collection calls (run them through `MongoPool.run`).
/// Each converts libmongoc's `bson_error_t` into `MongoError` at the call site.
enum CollectionOps {
    /// findAndModify; returns the document after the update, or nil.
    static func findAndModify(_ coll: OpaquePointer, query: JSONValue, sortJSON: String?, update: JSONValue,
                              fields: JSONValue? = nil, upsert: Bool = false) throws -> JSONValue? {
        let q = try BSONDocument(query)
        let u = try BSONDocument(update)
        // The sort is ordered text (a JSONValue object has no order).
        let sort = try sortJSON.map { try BSONDocument(extendedJSON: $0) }
        let f = try fields.map { try BSONDocument($0) }
        let opts = mongoc_find_and_modify_opts_new()!
        defer { mongoc_find_and_modify_opts_destroy(opts) }
        return try withExtendedLifetime((q, u, sort, f)) {
            if let sort { mongoc_find_and_modify_opts_set_sort(opts, sort.pointer) }
            if let f { mongoc_find_and_modify_opts_set_fields(opts, f.pointer) }
            mongoc_find_and_modify_opts_set_update(opts, u.pointer)
            mongoc_find_and_modify_opts_set_flags(opts, upsert
                ? mongoc_find_and_modify_flags_t(MONGOC_FIND_AND_MODIFY_RETURN_NEW.rawValue | MONGOC_FIND_AND_MODIFY_UPSERT.rawValue)
                : MONGOC_FIND_AND_MODIFY_RETURN_NEW)
            return try withReply { reply in
                var error = bson_error_t()
                guard mongoc_collection_find_and_modify_with_opts(coll, q.pointer, opts, reply, &error) else {
                    throw MongoError(error, "findAndModify")
                }
                let value = try BSONDocument.json(of: reply)["value"]
                return value?.isNull == false ? value : nil
            }
        }
    }

    /// updateOne (or updateMany); returns the number of matched documents.
    @discardableResult
    static func update(_ coll: OpaquePointer, filter: JSONValue, update: JSONValue, many: Bool = false,
                       upsert: Bool = false) throws -> Int {
        try updateCounts(coll, filter: filter, update: update, many: many, upsert: upsert).matched
    }

    /// updateOne (or updateMany); returns the matched and modified counts
    /// (modified nil when the reply has none).
    static func updateCounts(_ coll: OpaquePointer, filter: JSONValue, update: JSONValue, many: Bool = false,
                             upsert: Bool = false) throws -> (matched: Int, modified: Int?) {
        let f = try BSONDocument(filter)
        let u = try BSONDocument(update)
        let o = try BSONDocument(upsert ? ["upsert": true] : [:])
        return try withExtendedLifetime((f, u, o)) {
            try withReply { reply in
                var error = bson_error_t()
                let ok = many ? mongoc_collection_update_many(coll, f.pointer, u.pointer, o.pointer, reply, &error)
                    : mongoc_collection_update_one(coll, f.pointer, u.pointer, o.pointer, reply, &error)
                guard ok else { throw MongoError(error, many ? "updateMany" : "updateOne") }
                let answer = try BSONDocument.json(of: reply)
                return (Int(answer["matchedCount"]?.intValue ?? 0), answer["modifiedCount"]?.intValue.map { Int($0) })
            }
        }
    }

    /// deleteOne; returns the number deleted.
    @discardableResult
    static func delete(_ coll: OpaquePointer, filter: JSONValue) throws -> Int {
        let f = try BSONDocument(filter)
        return try f.withPointer { filter in
            try withReply { reply in
                var error = bson_error_t()
                guard mongoc_collection_delete_one(coll, filter, nil, reply, &error) else { throw MongoError(error, "deleteOne") }
                return Int(try BSONDocument.json(of: reply)["deletedCount"]?.intValue ?? 0)
            }
        }
    }

    /// Several updateOne statements sent as one `update` command (an
    /// unordered bulk write: one request however many); returns how many
    /// documents they matched in all.
    @discardableResult
    static func updateEach(_ coll: OpaquePointer, _ statements: [(filter: JSONValue, update: JSONValue)]) throws -> Int {
        guard !statements.isEmpty else { return 0 }
        let docs = try statements.map { (try BSONDocument($0.filter), try BSONDocument($0.update)) }
        return try bulk(coll, "bulk update", reading: "nMatched") { bulk, error in
            for (f, u) in docs where !mongoc_bulk_operation_update_one_with_opts(bulk, f.pointer, u.pointer, nil, &error) {
                return false
            }
            return true
        }
    }

    /// A replaceOne (upserting) followed by updateOne statements on the same
    /// collection, sent as one `update` command (ordered: in this order).
    static func replaceThenUpdate(_ coll: OpaquePointer, replace: (filter: JSONValue, document: JSONValue),
                                  then statements: [(filter: JSONValue, update: JSONValue)]) throws -> Int {
        let first = (try BSONDocument(replace.filter), try BSONDocument(replace.document))
        let upsert = try BSONDocument(["upsert": true])
        let docs = try statements.map { (try BSONDocument($0.filter), try BSONDocument($0.update)) }
        return try bulk(coll, "bulk replace and update", reading: "nMatched", ordered: true) { bulk, error in
            guard mongoc_bulk_operation_replace_one_with_opts(bulk, first.0.pointer, first.1.pointer, upsert.pointer, &error)
            else { return false }
            for (f, u) in docs where !mongoc_bulk_operation_update_one_with_opts(bulk, f.pointer, u.pointer, nil, &error) {
                return false
            }
            return true
        }
    }

    /// Several deleteOne statements sent as one `delete` command (unordered);
    /// returns how many documents were deleted in all.
    @discardableResult
    static func deleteEach(_ coll: OpaquePointer, _ filters: [JSONValue]) throws -> Int {
        guard !filters.isEmpty else { return 0 }
        let docs = try filters.map { try BSONDocument($0) }
        return try bulk(coll, "bulk delete", reading: "nRemoved") { bulk, error in
            for f in docs where !mongoc_bulk_operation_remove_one_with_opts(bulk, f.pointer, nil, &error) { return false }
            return true
        }
    }

    /// Several documents inserted as one `insert` command (unordered; libmongoc
    /// splits it only past the server's message size); returns how many were inserted.
    @discardableResult
    static func insertEach(_ coll: OpaquePointer, _ documents: [JSONValue]) throws -> Int {
        guard !documents.isEmpty else { return 0 }
        let docs = try documents.map { try BSONDocument($0) }
        return try bulk(coll, "bulk insert", reading: "nInserted") { bulk, error in
            for d in docs where !mongoc_bulk_operation_insert_with_opts(bulk, d.pointer, nil, &error) { return false }
            return true
        }
    }

    /// One unordered bulk write: `add` appends its statements (false, with
    /// `error` set, when one cannot be added); returns the reply's `count` field.
    private static func bulk(_ coll: OpaquePointer, _ operation: String, reading count: String, ordered: Bool = false,
                             add: (OpaquePointer, inout bson_error_t) -> Bool) throws -> Int {
        let opts = try BSONDocument(["ordered": .bool(ordered)])
        guard let bulk = opts.withPointer({ mongoc_collection_create_bulk_operation_with_opts(coll, $0) }) else {
            throw MongoError(message: "cannot create a bulk write", operation: operation)
        }
        defer { mongoc_bulk_operation_destroy(bulk) }
        var error = bson_error_t()
        guard add(bulk, &error) else { throw MongoError(error, operation) }
        return try withReply { reply in
            guard mongoc_bulk_operation_execute(bulk, reply, &error) != 0 else { throw MongoError(error, operation) }
            return Int(try BSONDocument.json(of: reply)[count]?.intValue ?? 0)
        }
    }

    /// insertOne.
    static func insert(_ coll: OpaquePointer, _ doc: JSONValue) throws {
        try BSONDocument(doc).withPointer { d in
            try withReply { reply in
                var error = bson_error_t()
                guard mongoc_collection_insert_one(coll, d, nil, reply, &error) else {
                    throw MongoError(error, "insertOne")
                }
            }
        }
    }

    /// find with an optional sort (as ordered JSON text), skip, limit and projection.
    /// The options keep the order the text had: sort, skip, limit, projection.
    static func find(_ coll: OpaquePointer, filter: JSONValue, sortJSON: String? = nil, skip: Int = 0, limit: Int = 0,
                     projection: JSONValue? = nil) throws -> [JSONValue] {
        let f = try BSONDocument(filter)
        let opts = BSONDocument()
        if let sortJSON { try opts.append("sort", document: BSONDocument(extendedJSON: sortJSON)) }
        if skip > 0 { try opts.append("skip", .int(Int64(skip))) }
        if limit > 0 { try opts.append("limit", .int(Int64(limit))) }
        if let projection { try opts.append("projection", projection) }
        var error = bson_error_t()
        let cursor = withExtendedLifetime((f, opts)) { mongoc_collection_find_with_opts(coll, f.pointer, opts.pointer, nil)! }
        defer { mongoc_cursor_destroy(cursor) }
        var docs: [JSONValue] = []
        var doc: OpaquePointer?
        while mongoc_cursor_next(cursor, &doc) {
            docs.append(try BSONDocument.json(of: doc!))
        }
        if mongoc_cursor_error(cursor, &error) { throw MongoError(error, "find") }
        return docs
    }

    /// countDocuments with `filter`.
    static func count(_ coll: OpaquePointer, filter: JSONValue) throws -> Int {
        var error = bson_error_t()
        let n = try BSONDocument(filter).withPointer { mongoc_collection_count_documents(coll, $0, nil, nil, nil, &error) }
        guard n >= 0 else { throw MongoError(error, "countDocuments") }
        return Int(n)
    }

    /// A write command on the collection's database (e.g. createIndexes).
    static func writeCommand(_ coll: OpaquePointer, _ cmd: String) throws {
        var error = bson_error_t()
        guard let c = bson_new_from_json(cmd, cmd.utf8.count, &error) else { throw MongoError(error, "command") }
        defer { bson_destroy(c) }
        try withReply { reply in
            guard mongoc_collection_write_command_with_opts(coll, c, nil, reply, &error) else {
                throw MongoError(error, "command")
            }
        }
    }
}
