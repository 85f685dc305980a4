import CMongoC
import Foundation
import RunnerCore

/// A libmongoc or libbson failure, converted at the call site.
public struct MongoError: Error, Sendable, CustomStringConvertible {
    public let domain: UInt32
    public let code: UInt32
    public let message: String
    public let operation: String

    init(_ e: bson_error_t, _ operation: String) {
        var copy = e
        domain = e.domain
        code = e.code
        message = withUnsafeBytes(of: &copy.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        self.operation = operation
    }

    init(message: String, operation: String) {
        domain = 0
        code = 0
        self.message = message
        self.operation = operation
    }

    public var description: String { "\(operation): \(message)" }

    /// Server error codes that mean "not now" rather than "never": the server
    /// is stepping down, shutting down, unreachable from a router, throttling
    /// or out of time. Everything else it returns is a rejection.
    static let transientServerCodes: Set<UInt32> = [
        6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 16500,
    ]

    /// Whether this is an outage (network, timeout, no server, a transient
    /// server state) worth retrying, as opposed to a rejection (an operator
    /// the server does not implement, a bad query, a missing permission) that
    /// will fail the same way every time. Decided by libmongoc's error domain
    /// and code, never by the message text.
    public var isOutage: Bool {
        switch domain {
        case MONGOC_ERROR_STREAM.rawValue, MONGOC_ERROR_SERVER_SELECTION.rawValue, MONGOC_ERROR_PROTOCOL.rawValue,
             MONGOC_ERROR_WRITE_CONCERN.rawValue, MONGOC_ERROR_POOL.rawValue:
            return true
        case MONGOC_ERROR_CLIENT.rawValue:
            return code != MONGOC_ERROR_CLIENT_AUTHENTICATE.rawValue && code != MONGOC_ERROR_CLIENT_TOO_BIG.rawValue
        case MONGOC_ERROR_SERVER.rawValue, MONGOC_ERROR_QUERY.rawValue, MONGOC_ERROR_COMMAND.rawValue:
            return Self.transientServerCodes.contains(code)
        default:
            return false
        }
    }

    /// What the failure is, for logs: "outage" or "rejected by the server", with domain and code.
    public var kind: String {
        (isOutage ? "outage" : "rejected by the server") + " (libmongoc domain \(domain), code \(code))"
    }

    /// Server error codes that mean "this document is too large":
    /// BSONObjectTooLarge (10334), and an update's or upsert's result over
    /// the limit (17419, 17420).
    static let documentTooLargeCodes: Set<UInt32> = [10334, 17419, 17420]

    /// Whether the server (or libmongoc, before sending) refused a document
    /// or command as too large. Decided by domain and code, never by the message text.
    public var isDocumentTooLarge: Bool {
        switch domain {
        case MONGOC_ERROR_CLIENT.rawValue: return code == MONGOC_ERROR_CLIENT_TOO_BIG.rawValue
        case MONGOC_ERROR_SERVER.rawValue, MONGOC_ERROR_QUERY.rawValue, MONGOC_ERROR_COMMAND.rawValue,
             MONGOC_ERROR_COLLECTION.rawValue, MONGOC_ERROR_BSON.rawValue:
            return Self.documentTooLargeCodes.contains(code)
        default: return false
        }
    }

    /// The server's duplicate-key codes: 11000 (E11000), and 11001 and 12582
    /// from older servers' updates and inserts.
    static let duplicateKeyCodes: Set<UInt32> = [11000, 11001, 12582]

    /// "Cannot create field … in element": an update's dotted path runs
    /// through a value that is not a document (`metadata: null`).
    public var isPathNotViable: Bool { isServerError && code == 28 }

    /// An error the server answered with (its `code` is the server's).
    var isServerError: Bool {
        [MONGOC_ERROR_SERVER.rawValue, MONGOC_ERROR_COMMAND.rawValue, MONGOC_ERROR_QUERY.rawValue,
         MONGOC_ERROR_COLLECTION.rawValue].contains(domain)
    }

    /// A duplicate-key error: the document another writer created first.
    /// Decided by the server error's code, never by the message text (which
    /// quotes the document, any of whose values may read "duplicate key").
    public var isDuplicateKey: Bool { isServerError && Self.duplicateKeyCodes.contains(code) }
}

/// Owns the `mongoc_client_pool_t` (thread-safe) and the fixed set of
/// threads that run every blocking libmongoc call, so none runs on Swift's
/// cooperative pool and contention queues work instead of adding threads.
/// Clients are popped per operation and pushed back.
public final class MongoPool: @unchecked Sendable {
    /// The threads that run `run` and `command`: one client each at most.
    public static let workerThreads = 4
    /// Clients beyond the workers': a change stream's thread
    /// (`ChangeWatcher`) and a caller of `withClient` on its own thread.
    static let reservedClients = 2

    private let pool: OpaquePointer
    /// The parsed URI, with the defaults set (tests read its options).
    let uri: OpaquePointer
    /// Started on demand; one idle for 30 s ends (a pool no longer used lets its threads go).
    private let workers = BlockingPool(name: "mongo", maxThreads: MongoPool.workerThreads, idleTimeout: 30)
    public let databaseName: String

    private static let initialized: Bool = {
        mongoc_init()
        // libmongoc keeps its performance counters in /dev/shm/mongoc-<pid>,
        // made when the library loads and removed only by a clean exit: a
        // killed supervisor left the file behind, and a later process given
        // that pid printed "Falling back to malloc for counters" on stderr.
        // The mapping stays valid once the name is gone; nothing here reads
        // the counters from outside (`mongoc-stat`).
        shm_unlink("/mongoc-\(getpid())")
        return true
    }()

    /// The socket timeout unless the URI sets `socketTimeoutMS`: longer than
    /// the slowest single operation the runner makes (a process's first claim
    /// on a 100,000-job queue reads for about 5 s; a change stream waits 1 s).
    public static let defaultSocketTimeoutMS: Int32 = 10_000

    /// Parses `uriString` (server selection defaults to 5 s, connect to 3 s and
    /// socket reads to `defaultSocketTimeoutMS` when unset).
    public init(uri uriString: String, databaseName: String, appName: String = "agent-runner") throws {
        _ = Self.initialized
        var error = bson_error_t()
        guard let u = mongoc_uri_new_with_error(uriString, &error) else {
            throw MongoError(error, "MONGODB_URI")
        }
        // Whether the URI sets an option is asked of the parsed URI's options
        // (case-insensitive keys), never of its text: a password or a host
        // name may contain an option's name.
        if !mongoc_uri_has_option(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS) {
            mongoc_uri_set_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000)
        }
        if !mongoc_uri_has_option(u, MONGOC_URI_CONNECTTIMEOUTMS) {
            mongoc_uri_set_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, 3000)
        }
        // A half-open connection (a server that stops answering) fails in
        // seconds, not libmongoc's default 5 minutes.
        if !mongoc_uri_has_option(u, MONGOC_URI_SOCKETTIMEOUTMS) {
            mongoc_uri_set_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS, Self.defaultSocketTimeoutMS)
        }
        mongoc_uri_set_appname(u, appName)
        guard let p = mongoc_client_pool_new(u) else {
            mongoc_uri_destroy(u)
            throw MongoError(message: "cannot create a client pool", operation: "mongoc_client_pool_new")
        }
        mongoc_client_pool_set_error_api(p, 2)
        // Sized to the threads that use it: a pop never waits for a client.
        mongoc_client_pool_max_size(p, UInt32(Self.workerThreads + Self.reservedClients))
        pool = p
        uri = u
        self.databaseName = databaseName
    }

    deinit {
        mongoc_client_pool_destroy(pool)
        mongoc_uri_destroy(uri)
    }

    /// Runs `body` with a client, synchronously, on the calling thread.
    /// Use `run` from async code.
    func withClient<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        let client = mongoc_client_pool_pop(pool)!
        defer { mongoc_client_pool_push(pool, client) }
        return try body(client)
    }

    /// Runs `body` with a collection handle on one of the pool's threads.
    func run<T: Sendable>(_ collection: String, _ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await workers.run {
            try self.withClient { client in
                let coll = mongoc_client_get_collection(client, self.databaseName, collection)!
                defer { mongoc_collection_destroy(coll) }
                return try body(coll)
            }
        }
    }

    /// Runs a database command (on `databaseName`) on one of the pool's threads.
    public func command(_ cmd: JSONValue) async throws -> JSONValue {
        try await workers.run { try self.commandBlocking(cmd) }
    }

    /// Runs a database command on the calling thread (it blocks: never from
    /// the cooperative pool in the runner; tests use it to clean up).
    func commandBlocking(_ cmd: JSONValue) throws -> JSONValue {
        try withClient { client in
            let doc = try BSONDocument(cmd)
            return try withReply { reply in
                var error = bson_error_t()
                guard mongoc_client_command_simple(client, self.databaseName, doc.pointer, nil, reply, &error)
                else { throw MongoError(error, "command") }
                return try BSONDocument.json(of: reply)
            }
        }
    }
}
