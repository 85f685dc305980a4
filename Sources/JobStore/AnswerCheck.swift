import Foundation
import RunnerCore

/// Two answers of the server that cannot both be true (or an answer that
/// contradicts the query it answers): a MongoDB-wire server that mishandles
/// a query shape. The runner acts on neither half (docs/contract.md,
/// "Answers checked").
public struct ServerContradiction: Error, Sendable, CustomStringConvertible {
    /// The runner's operation, e.g. "lease renewal".
    public let operation: String
    /// The query shape the server mishandles, for the operator.
    public let shape: String
    /// The first answer, and the one that contradicts it.
    public let first: String
    public let second: String

    public init(operation: String, shape: String, first: String, second: String) {
        self.operation = operation
        self.shape = shape
        self.first = first
        self.second = second
    }

    public var description: String { "\(operation): \(first), but \(second) (\(shape))" }
}

/// What a lease renewal or lease read learned, checked against itself.
public struct LeaseAnswer: Sendable {
    /// The tokens whose lease is held, each with its job's `cancelRequested`
    /// (from well-formed documents only).
    public var held: [String: Bool] = [:]
    /// Tokens held as far as the answers go, though no well-formed document
    /// named them (every token was matched, but the read came back malformed):
    /// the lease is kept, no cancel flag is known.
    public var heldUnread: Set<String> = []
    /// Tokens neither shown held nor shown lost: the answers contradict each
    /// other. Their children are not stopped; their lease clocks not renewed.
    public var unsure: Set<String> = []
    public var contradiction: ServerContradiction?
    /// The renewal's write matched every token it was asked for. After a
    /// contradiction, only then is any lease clock renewed: otherwise no
    /// answer says which leases the write extended.
    public var renewalMatchedAll = false

    /// An answer that shows no lease held.
    public init() {}

    /// Whether `token` is known to have lost its lease.
    public func lost(_ token: String) -> Bool { held[token] == nil && !heldUnread.contains(token) && !unsure.contains(token) }
}

extension JobStore {
    /// The lease read's shape: the whole `lease` sub-document (never a dotted
    /// projection, which some servers answer as a flat `"lease.token"` key).
    static let leaseProjection: JSONValue = ["lease": 1, "cancelRequested": 1]

    /// Checks the lease read (`docs`, found by `lease.token $in tokens`)
    /// against itself and against the renewal's `updateMany` before it
    /// (`matched`, nil for a read alone). `released` says which tokens this
    /// runner let go of since (a job that ended between the write and the read
    /// is gone from the read, and that is no contradiction).
    public static func checkLeaseAnswer(tokens: [String], matched: Int?, docs: [JSONValue],
                                        released: (String) -> Bool) -> LeaseAnswer {
        let asked = Set(tokens)
        var answer = LeaseAnswer()
        answer.renewalMatchedAll = matched.map { $0 >= asked.count } ?? false
        var malformed: [String] = []
        for doc in docs {
            if let token = doc["lease"]?["token"]?.stringValue, asked.contains(token), answer.held[token] == nil {
                answer.held[token] = doc["cancelRequested"]?.boolValue == true
            } else {
                malformed.append(Self.summary(doc))
            }
        }
        let missing = asked.subtracting(answer.held.keys)
        let gone = missing.filter(released).count
        var problems: [String] = []
        if !malformed.isEmpty {
            problems.append("the read returned \(malformed.count) document(s) without a nested lease.token it asked for: "
                + malformed.prefix(3).joined(separator: "; "))
        }
        if let matched, answer.held.count > matched {
            problems.append("the read found \(answer.held.count) lease(s) held, more than the \(matched) the renewal matched")
        }
        if let matched, matched > answer.held.count + gone + malformed.count {
            problems.append("the read found \(answer.held.count) of the \(matched) lease(s) the renewal matched")
        }
        guard !problems.isEmpty else { return answer }
        // The documents the read returned matched `lease.token $in tokens`: when
        // there is one for every token asked (and the write matched them all),
        // every lease is held, malformed or not.
        let stillAsked = missing.filter { !released($0) }
        if docs.count >= tokens.count, matched.map({ $0 >= tokens.count }) ?? true {
            answer.heldUnread = stillAsked
        } else {
            answer.unsure = stillAsked
        }
        let renewal = matched.map { "the renewal (updateMany on lease.token $in \(tokens.count) token(s)) matched \($0)" }
            ?? "the lease read asked for \(tokens.count) token(s)"
        answer.contradiction = ServerContradiction(
            operation: matched == nil ? "lease read" : "lease renewal",
            shape: malformed.isEmpty
                ? "updateMany's matchedCount against a find on lease.token $in [...] that follows it"
                : "a find projecting the lease sub-document ({lease: 1}) answers without a nested lease.token",
            first: renewal, second: problems.joined(separator: "; "))
        return answer
    }

    /// Checks a claim candidate against the query that found it, before it is
    /// claimed: the runner acts on this document (it becomes the claimed job,
    /// not read back). `conditions` is the claim's guard for it.
    static func checkCandidate(_ doc: JSONValue, conditions: [String: JSONValue], now: Date) -> ServerContradiction? {
        let shape = "a find on jobs returning the claim's candidate (projection {logs: 0})"
        func contradiction(_ second: String, shape: String = shape) -> ServerContradiction {
            ServerContradiction(operation: "claim", shape: shape,
                                first: "the claim search asked for \(conditions["status"]?.stringValue ?? "?") jobs",
                                second: "it answered \(second): \(Self.summary(doc))")
        }
        guard doc["_id"] != nil else { return contradiction("a document without _id") }
        if let status = conditions["status"]?.stringValue, doc["status"]?.stringValue != status {
            return contradiction("a document whose status is not \(status)")
        }
        // Taking over a running job is safe only once its lease has expired: a
        // date the server answers in another form is no proof of that.
        if conditions["lease.expiresAt"] != nil {
            guard let lease = doc["lease"], lease.objectValue != nil else {
                return contradiction("a running job without a nested lease",
                                     shape: "a find on lease.expiresAt $lt now answers without a nested lease sub-document")
            }
            guard let expires = lease["expiresAt"]?.dateValue else {
                return contradiction("a lease whose expiresAt is not a date",
                                     shape: "a find on lease.expiresAt $lt now answers dates in another form (e.g. strings)")
            }
            if expires > now.addingTimeInterval(1) {
                return contradiction("a lease that expires at \(expires), after now",
                                     shape: "a find on lease.expiresAt $lt now matches a lease that has not expired")
            }
        }
        return nil
    }

    /// Checks the claim's `updateOne` answer: it set a fresh lease token, so
    /// it modified every document it matched, and matched at most one.
    static func checkClaimWrite(matched: Int, modified: Int?) -> ServerContradiction? {
        guard matched > 1 || modified.map({ $0 != matched }) == true else { return nil }
        return ServerContradiction(operation: "claim", shape: "updateOne's matchedCount and modifiedCount",
                                   first: "the claim's updateOne (filter on _id, setting a fresh lease token) matched \(matched)",
                                   second: "it reports \(modified.map(String.init) ?? "no") document(s) modified")
    }

    /// A document for a log line: its `_id`, `status` and `lease` as answered (never logs or spec).
    static func summary(_ doc: JSONValue) -> String {
        guard let object = doc.objectValue else { return doc.jsonString }
        let keys = object.keys.filter { $0 == "_id" || $0 == "status" || $0.hasPrefix("lease") }.sorted()
        return "{" + keys.map { "\($0): \(object[$0]!.jsonString)" }.joined(separator: ", ") + "}"
    }
}
