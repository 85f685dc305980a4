import Foundation

/// One entry of a job's event stream: what the agent asked the model, ran,
/// wrote and was refused, and the runner's own steps (docs/contract.md, "Job
/// events", schema version `schemaVersion`). Made in the job child (the
/// agent's events, the stages, generator, validation and publish steps),
/// redacted and bounded there (`bounded`, `redacted`), sent on the child's
/// stdout as an `event` line, and numbered and stored by the supervisor
/// (`seq`, `attempt`), which adds the egress proxy's decisions and metering.
///
/// The fields of each kind are in `data`; constructors for each kind are in
/// `JobEventKinds.swift`, so a producer cannot misname one.
public struct JobEvent: Sendable, Equatable, Codable {
    /// The stored and served schema's version (`v` of every stored event).
    public static let schemaVersion = 1

    /// What an event reports. Its JSON name is `kind`.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// The job entered a stage (`stage`).
        case stage
        /// The agent asked the model (`model`, `provider`, `iteration`).
        case modelRequest = "model_request"
        /// The model answered (`model`, tokens, `cost`, `durationMs`), as the agent reported it.
        case modelResponse = "model_response"
        /// The agent called a tool (`tool`, `id`, `input`).
        case toolCall = "tool_call"
        /// A tool call ended (`tool`, `id`, `ok`, `output` or `error`, `durationMs`).
        case toolResult = "tool_result"
        /// The agent ran a command (`command`, `exitCode` when known, `output`).
        case command
        /// The agent wrote or edited a file (`path`, `operation`, `bytes` when known).
        case fileWrite = "file_write"
        /// The agent's text: an answer, its reasoning, its final result (`role`, `text`).
        case message
        /// The agent reported an error (`message`, `recoverable`).
        case error
        /// The egress proxy opened a connection (`target`).
        case egressAllowed = "egress_allowed"
        /// The egress proxy refused one (`target`, `reason`, `detail`).
        case egressDenied = "egress_denied"
        /// A model call through the proxy's provider route, metered (`route`, `model`, tokens, `costUsd`, `status`).
        case providerCall = "provider_call"
        /// The job's budget crossed a threshold or was spent (`message`, `exceeded`).
        case budget
        /// A generator of the chain started, was skipped, failed or finished (`generator`, `step`, `detail`).
        case generator
        /// What the tree's validation found (`finding`, `ok`, `detail`, `files`, `bytes`).
        case validation
        /// A step of the publish (`step`, `detail`, `commit`, `branch`).
        case publish
        /// The pushed commit's files (`commit`, `files`: path, status, bytes, binary; `total`).
        case changes
        /// One text file's diff in the pushed commit (`path`, `text`).
        case diff
        /// The stream reached JOB_EVENTS_MAX: later events are dropped (`max`).
        case truncated
    }

    public var kind: Kind
    /// When it happened (the child's clock; for the proxy's events, when the supervisor read them).
    public var at: Date
    /// The kind's fields.
    public var data: [String: JSONValue]
    /// Each field that was clipped, by its path in `data`, with its size in UTF-8 bytes before.
    public var clipped: [String: Int]
    /// The job-wide sequence number, from 1 (set by the supervisor).
    public var seq: Int?
    /// The attempt that produced it (set by the supervisor).
    public var attempt: Int?

    public init(_ kind: Kind, at: Date = Date(), _ data: [String: JSONValue] = [:]) {
        self.kind = kind
        self.at = at
        self.data = data.filter { !$0.value.isNull }
        clipped = [:]
    }

    private enum CodingKeys: String, CodingKey { case kind, ts, data, clipped, seq, attempt }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(Kind.self, forKey: .kind)
        at = Date(timeIntervalSince1970: Double(try c.decode(Int64.self, forKey: .ts)) / 1000)
        data = try c.decodeIfPresent([String: JSONValue].self, forKey: .data) ?? [:]
        clipped = try c.decodeIfPresent([String: Int].self, forKey: .clipped) ?? [:]
        seq = try c.decodeIfPresent(Int.self, forKey: .seq)
        attempt = try c.decodeIfPresent(Int.self, forKey: .attempt)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(Int64((at.timeIntervalSince1970 * 1000).rounded()), forKey: .ts)
        try c.encode(data, forKey: .data)
        if !clipped.isEmpty { try c.encode(clipped, forKey: .clipped) }
        try c.encodeIfPresent(seq, forKey: .seq)
        try c.encodeIfPresent(attempt, forKey: .attempt)
    }

    // MARK: bounds

    /// The longest string field kept, in UTF-8 bytes (a diff's `text` keeps `maxTextBytes`).
    public static let maxFieldBytes = 4096
    /// The longest `diff` text kept.
    public static let maxTextBytes = 32 * 1024
    /// The most entries an array field keeps (a `changes` event's files).
    public static let maxArrayEntries = 500
    /// The most bytes an event's JSON may have on the child's pipe (within `LineFraming.maxLineBytes`).
    public static let maxEncodedBytes = 48 * 1024

    /// This event with every string at most `maxFieldBytes` (`maxTextBytes`
    /// for a diff's `text`), every array at most `maxArrayEntries` entries,
    /// nesting cut at depth 4, and its whole JSON at most `maxEncodedBytes`:
    /// each cut recorded in `clipped` with the size it had.
    public var bounded: JobEvent {
        var e = self
        var clipped = self.clipped
        func bound(_ v: JSONValue, _ path: String, _ depth: Int, limit: Int) -> JSONValue {
            switch v {
            case .string(let s):
                let n = s.utf8.count
                guard n > limit else { return v }
                clipped[path] = max(clipped[path] ?? 0, n)
                return .string(LogBounds.clip(s, bytes: limit))
            case .array(let a):
                guard depth < 4 else { clipped[path] = a.count; return .array([]) }
                if a.count > Self.maxArrayEntries { clipped[path] = a.count }
                return .array(a.prefix(Self.maxArrayEntries).enumerated().map {
                    bound($0.element, path + "." + String($0.offset), depth + 1, limit: limit)
                })
            case .object(let o):
                guard depth < 4 else { clipped[path] = o.count; return .object([:]) }
                return .object(Dictionary(o.prefix(64).map {
                    (LogBounds.prefix($0.key, bytes: 64), bound($0.value, path + "." + $0.key, depth + 1, limit: limit))
                }) { a, _ in a })
            case .double(let d): return d.isFinite ? v : .null
            default: return v
            }
        }
        e.data = Dictionary(data.prefix(64).map { key, value in
            let limit = kind == .diff && key == "text" ? Self.maxTextBytes : Self.maxFieldBytes
            return (LogBounds.prefix(key, bytes: 64), bound(value, key, 0, limit: limit))
        }) { a, _ in a }
        e.clipped = Dictionary(clipped.prefix(64).map { (LogBounds.prefix($0.key, bytes: 200), $0.value) }) { a, _ in a }
        // JSON escapes can make text six times longer: halve the longest strings until it fits.
        var limit = Self.maxTextBytes
        while e.encodedSize > Self.maxEncodedBytes, limit > 64 {
            limit /= 2
            e.data = e.data.mapValues { Self.clipStrings($0, limit) }
            e.clipped["*"] = max(e.clipped["*"] ?? 0, limit)
        }
        // Still too large (many short strings, each escaped: `/` is `\/`): the fields are dropped.
        let size = e.encodedSize
        return size > Self.maxEncodedBytes ? e.stubbed(size) : e
    }

    /// This event without its fields: `data` is `{"dropped": size}` and
    /// `clipped` `{"data": size}`, `size` the bytes its JSON had. Always
    /// far within `maxEncodedBytes`.
    public func stubbed(_ size: Int) -> JobEvent {
        var e = self
        e.data = ["dropped": .int(Int64(size))]
        e.clipped = ["data": size]
        return e
    }

    /// The bytes of this event's JSON.
    public var encodedSize: Int { (try? JSONEncoder().encode(self).count) ?? Int.max }

    private static func clipStrings(_ v: JSONValue, _ limit: Int) -> JSONValue {
        switch v {
        case .string(let s): return s.utf8.count > limit ? .string(LogBounds.clip(s, bytes: limit)) : v
        case .array(let a): return .array(a.map { clipStrings($0, limit) })
        case .object(let o): return .object(o.mapValues { clipStrings($0, limit) })
        default: return v
        }
    }

    /// This event with every string (and object key) passed through `redactor`.
    public func redacted(_ redactor: Redactor) -> JobEvent {
        func walk(_ v: JSONValue) -> JSONValue {
            switch v {
            case .string(let s): return .string(redactor.redact(s))
            case .array(let a): return .array(a.map(walk))
            case .object(let o): return .object(Dictionary(o.map { (redactor.redact($0.key), walk($0.value)) }) { a, _ in a })
            default: return v
            }
        }
        var e = self
        e.data = data.mapValues(walk)
        return e
    }

    /// The event as stored in `job_events` and served by the API (`jobId` added by the store).
    public var json: JSONValue {
        var o: [String: JSONValue] = ["v": .int(Int64(Self.schemaVersion)), "kind": .string(kind.rawValue),
                                      "at": .date(at), "data": .object(data)]
        if let seq { o["seq"] = .int(Int64(seq)) }
        if let attempt { o["attempt"] = .int(Int64(attempt)) }
        if !clipped.isEmpty { o["clipped"] = .object(clipped.mapValues { .int(Int64($0)) }) }
        return .object(o)
    }

    /// An event as `job_events` stores it (`json`); nil for a document that
    /// is not one (a kind of a later schema version is skipped, not guessed).
    public init?(stored doc: JSONValue) {
        guard let kind = doc["kind"]?.stringValue.flatMap(Kind.init(rawValue:)), let at = doc["at"]?.dateValue else { return nil }
        self.init(kind, at: at, doc["data"]?.objectValue ?? [:])
        clipped = (doc["clipped"]?.objectValue ?? [:]).compactMapValues { $0.intValue.map { Int(clamping: $0) } }
        seq = doc["seq"]?.intValue.map { Int(clamping: $0) }
        attempt = doc["attempt"]?.intValue.map { Int(clamping: $0) }
    }

    /// The event as the API, the JSONL download and `agent-runner events`
    /// give it: the stored fields, `at` as ISO 8601 text, the job's id as
    /// text, and `summary`, one line of text for people (`summary`).
    public func apiJSON(jobId: String) -> JSONValue {
        var o = json.objectValue ?? [:]
        o["at"] = .string(at.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        o["jobId"] = .string(jobId)
        o["summary"] = .string(summary)
        return .object(o)
    }
}
