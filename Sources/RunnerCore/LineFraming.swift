import Foundation

/// The one framing rule for the NDJSON the job child writes and the lines
/// any subprocess writes (the child's stdout and stderr read by the
/// supervisor, an agent's output read by the child): a line is at most
/// `maxLineBytes` bytes before its newline.
public enum LineFraming {
    /// The longest line, in bytes, without its newline.
    public static let maxLineBytes = 64 * 1024

    /// What replaces the end of a line that was too long.
    public static func cutMarker(_ droppedBytes: Int) -> String { " …[line cut: \(droppedBytes) more bytes]" }

    /// The longest string field kept in a `result` event's metadata.
    public static let maxMetadataField = 2048
    /// The most `timings` entries kept in a `result` event.
    public static let maxTimings = 32

    /// `event` as one NDJSON line (newline included) of at most
    /// `maxLineBytes + 1` bytes: a longer log line is cut with a marker, a
    /// failure's message likewise, and a success's metadata is always
    /// bounded, so a `result` event always fits.
    public static func encode(_ event: ChildEvent) -> [UInt8] {
        if case .succeeded(let meta) = event {
            var line = encoded(.succeeded(bounded(meta)))
            if line.count > maxLineBytes {
                var bare = bounded(meta)
                bare.timings = nil
                line = encoded(.succeeded(bare))
            }
            return line + [0x0A]
        }
        // An event is bounded to far less than a line (`JobEvent.bounded`); checked all the same.
        if case .event(let e) = event {
            let line = encoded(.event(e.bounded))
            return (line.count > maxLineBytes ? encoded(.event(e.stubbed(line.count))) : line) + [0x0A]
        }
        var line = encoded(event)
        if line.count > maxLineBytes {
            switch event {
            case .log(let text): line = encoded(.log(cut(text) { encoded(.log($0)) }))
            case .failed(let f):
                line = encoded(.failed(JobFailure(f.code, cut(f.message) { m in
                    encoded(.failed(JobFailure(f.code, m, retryable: f.retryable)))
                }, retryable: f.retryable)))
            case .succeeded, .stage, .pushTokenRequest, .checkpoint, .stopping, .event: break
            }
        }
        return line + [0x0A]
    }

    /// `meta` with every string field at most `maxMetadataField` bytes (cut
    /// with a marker), the agent's fields bounded (`AgentUsage.bounded`) and
    /// at most `maxTimings` timings. Its encoding is then at most about
    /// 6 × 6 × `maxMetadataField` + 4 × 6 × `AgentUsage.maxStringBytes` +
    /// 32 × 100 bytes (JSON escapes six-fold at worst), well within a line.
    public static func bounded(_ meta: JobMetadata) -> JobMetadata {
        func clip(_ s: String?) -> String? { s.map { LogBounds.clip($0, bytes: maxMetadataField) } }
        var m = meta
        m.repoUrl = clip(m.repoUrl)
        m.branch = clip(m.branch)
        m.commitSha = clip(m.commitSha)
        m.parentSha = clip(m.parentSha)
        m.pushSkippedReason = clip(m.pushSkippedReason)
        m.generator = clip(m.generator)
        m.agent = m.agent?.bounded
        m.publishMode = clip(m.publishMode)
        m.pullRequest = m.pullRequest?.bounded(maxMetadataField)
        if let t = m.timings, t.count > maxTimings || t.keys.contains(where: { $0.utf8.count > 64 }) {
            m.timings = Dictionary(uniqueKeysWithValues: t.filter { $0.key.utf8.count <= 64 }
                .sorted { $0.key < $1.key }.prefix(maxTimings).map { ($0.key, $0.value) })
        }
        return m
    }

    /// How much of a malformed protocol line a failure quotes.
    public static let quotedBytes = 200

    /// The `internal` failure for a protocol line that does not decode
    /// (`whose`: whose line it is), naming the line: redacted with `redactor`
    /// first, then clipped to `quotedBytes` (`LogBounds.clip`; a cut secret
    /// would escape the redactor's patterns), quoted with its control
    /// characters escaped.
    public static func malformed(_ whose: String, line: String, redactor: Redactor) -> JobFailure {
        let shown = LogBounds.clip(redactor.redact(line), bytes: quotedBytes)
        return JobFailure(.internal, "\(whose) is not a protocol message: \(shown.debugDescription)")
    }

    /// The longest prefix of `text` (cut with a marker) whose encoding fits.
    static func cut(_ text: String, _ encode: (String) -> [UInt8]) -> String {
        var budget = maxLineBytes - 256
        while budget > 0 {
            let kept = LogBounds.prefix(text, bytes: budget)
            let candidate = kept + cutMarker(text.utf8.count - kept.utf8.count)
            let size = encode(candidate).count
            if size <= maxLineBytes { return candidate }
            // JSON escaping made it longer: shrink in proportion, then a little more.
            budget = budget * maxLineBytes / size - 64
        }
        return cutMarker(text.utf8.count)
    }

    static func encoded(_ event: ChildEvent) -> [UInt8] {
        (try? Array(JSONEncoder().encode(event))) ?? Array(#"{"type":"log","line":"unencodable event"}"#.utf8)
    }
}

/// Splits a byte stream into lines under `LineFraming`: a line longer than
/// `maxLineBytes` is delivered once, cut with a marker, and the rest of it is
/// discarded up to its newline, so memory stays bounded whatever the writer
/// sends.
public struct LineSplitter: Sendable {
    private var pending: [UInt8] = []
    /// Bytes of an over-long line dropped so far (nil: not inside one).
    private var dropping: Int?
    private let limit: Int

    public init(maxLineBytes: Int = LineFraming.maxLineBytes) { limit = maxLineBytes }

    /// Feeds bytes; `emit` receives each complete line.
    public mutating func feed(_ bytes: some Collection<UInt8>, _ emit: (String) -> Void) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let nl = rest.firstIndex(of: 0x0A)
            let piece = rest[..<(nl ?? rest.endIndex)]
            if let dropped = dropping {
                if nl != nil {
                    dropping = nil
                    emitCut(dropped + piece.count, emit)
                } else {
                    dropping = dropped + piece.count
                }
            } else if pending.count + piece.count > limit {
                let room = limit - pending.count
                pending += piece.prefix(room)
                let dropped = piece.count - room
                if nl != nil { emitCut(dropped, emit) } else { dropping = dropped }
            } else {
                pending += piece
                if nl != nil {
                    emit(String(decoding: pending, as: UTF8.self))
                    pending.removeAll(keepingCapacity: true)
                }
            }
            guard let nl else { break }
            rest = rest[rest.index(after: nl)...]
        }
    }

    /// Delivers what is left once the stream ends (a last line without newline).
    public mutating func finish(_ emit: (String) -> Void) {
        if let dropped = dropping { emitCut(dropped, emit) }
        else if !pending.isEmpty { emit(String(decoding: pending, as: UTF8.self)) }
        pending = []
        dropping = nil
    }

    private mutating func emitCut(_ dropped: Int, _ emit: (String) -> Void) {
        emit(String(decoding: pending, as: UTF8.self) + LineFraming.cutMarker(dropped))
        pending.removeAll(keepingCapacity: true)
        dropping = nil
    }
}
