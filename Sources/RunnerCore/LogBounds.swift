import Foundation

/// The byte bounds on a job's log, the one write the agent can grow
/// (docs/contract.md, "Job: runner-owned fields"): each line at most
/// `lineBytes` UTF-8 bytes (JOB_LOG_LINE_BYTES), one attempt's lines at most
/// `jobBytes` (JOB_LOG_BYTES). Bytes, not characters: one letter with 30
/// combining accents is one character and 61 bytes. The child applies them to
/// what it emits and the supervisor again to what it records.
public struct LogBounds: Sendable, Equatable {
    public var lineBytes: Int
    public var jobBytes: Int

    public init(lineBytes: Int = Self.defaultLineBytes, jobBytes: Int = Self.defaultJobBytes) {
        self.lineBytes = lineBytes
        self.jobBytes = jobBytes
    }

    public static let defaultLineBytes = 4096
    public static let defaultJobBytes = 2 << 20
    /// The most a job's stored log may hold (JOB_LOG_CAP × JOB_LOG_LINE_BYTES):
    /// with the bounded `errors` and `metadata`, the job document stays well
    /// under MongoDB's 16 MiB.
    public static let maxStoredBytes = 8 << 20

    /// `line` cut to `lineBytes`.
    public func line(_ line: String) -> String { Self.clip(line, bytes: lineBytes) }

    /// The line that replaces every line past `jobBytes`.
    public var limitMarker: String {
        "[log limit reached: this attempt's log holds at most JOB_LOG_BYTES=\(jobBytes) bytes; later lines are dropped]"
    }

    /// `s` if it has at most `bytes` UTF-8 bytes; else its longest prefix,
    /// cut on a scalar boundary, that fits with `LineFraming.cutMarker` after
    /// it (the result has at most `bytes` bytes, marker included).
    public static func clip(_ s: String, bytes: Int) -> String {
        let total = s.utf8.count
        guard total > bytes else { return s }
        // The marker for the whole length is the longest it can be.
        let room = max(0, bytes - LineFraming.cutMarker(total).utf8.count)
        let kept = prefix(s, bytes: room)
        return kept + LineFraming.cutMarker(total - kept.utf8.count)
    }

    /// The longest prefix of `s` of at most `bytes` UTF-8 bytes, on a scalar boundary.
    public static func prefix(_ s: String, bytes: Int) -> String {
        var end = s.utf8.startIndex
        var used = 0
        for scalar in s.unicodeScalars {
            let n = UTF8.width(scalar)
            if used + n > bytes { break }
            used += n
            end = s.utf8.index(end, offsetBy: n)
        }
        return String(s[..<end])
    }
}

/// One attempt's log under `LogBounds`: each line cut to `lineBytes`; once
/// the lines reach `jobBytes`, one marker line and then nothing.
public struct LogBudget: Sendable {
    public let bounds: LogBounds
    /// The bytes of the lines admitted so far.
    public private(set) var used = 0
    /// The lines dropped past the limit.
    public private(set) var dropped = 0

    public init(_ bounds: LogBounds) { self.bounds = bounds }

    /// What to record for `line`: the line (cut), the limit's marker for the
    /// first line past it, or nil.
    public mutating func admit(_ line: String) -> String? {
        if dropped > 0 {
            dropped += 1
            return nil
        }
        let kept = bounds.line(line)
        let n = kept.utf8.count
        guard used + n <= bounds.jobBytes else {
            dropped = 1
            return bounds.limitMarker
        }
        used += n
        return kept
    }
}
