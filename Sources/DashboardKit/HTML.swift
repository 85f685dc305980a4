import Foundation
import JobStore
import RunnerCore

/// A piece of HTML. Built with string interpolation that escapes every
/// interpolated `String` (and number, date, JSON value); only another
/// `HTML` value or `raw:` goes in unescaped. So a value from the database
/// can reach a page only as text.
public struct HTML: Sendable, ExpressibleByStringInterpolation, CustomStringConvertible {
    public let html: String

    public init(stringLiteral value: String) { html = value }
    public init(stringInterpolation s: StringInterpolation) { html = s.out }
    init(unsafeRaw: String) { html = unsafeRaw }

    public var description: String { html }

    /// Escapes `&`, `<`, `>`, `"` and `'` (safe in text and quoted attributes).
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\0": out += "\u{FFFD}"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var out = ""
        public init(literalCapacity: Int, interpolationCount: Int) { out.reserveCapacity(literalCapacity * 2) }
        public mutating func appendLiteral(_ literal: String) { out += literal }
        public mutating func appendInterpolation(_ text: String) { out += HTML.escape(text) }
        public mutating func appendInterpolation(_ text: String?) { out += HTML.escape(text ?? "-") }
        public mutating func appendInterpolation(_ n: some BinaryInteger) { out += "\(n)" }
        public mutating func appendInterpolation(_ value: JSONValue?) { out += HTML.escape(Show.text(value)) }
        public mutating func appendInterpolation(_ html: HTML) { out += html.html }
        public mutating func appendInterpolation(_ parts: [HTML]) { for p in parts { out += p.html } }
        /// A URL path segment, percent-encoded, then escaped for an attribute.
        public mutating func appendInterpolation(path segment: String) {
            out += HTML.escape(segment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? "")
        }
    }
}

/// How values from job documents are shown: tolerant of any shape.
enum Show {
    /// Text for any JSON value: strings as they are, dates as UTC, others as JSON.
    static func text(_ value: JSONValue?) -> String {
        guard let value, !value.isNull else { return "-" }
        if let s = value.stringValue { return s }
        if let d = value.dateValue { return timestamp(d) }
        if let n = value.intValue { return "\(n)" }
        return value.jsonString
    }

    static func timestamp(_ d: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        return f.string(from: d)
    }

    /// A commit id's first 7 digits when it is one (40 hex digits), else the text as it is.
    static func shortSHA(_ text: String) -> String {
        let hex = text.utf8.count == 40 && text.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) }
        return hex ? String(text.prefix(7)) : text
    }

    static func iso(_ d: Date) -> String { d.formatted(.iso8601) }

    /// "42s", "3m 05s", "2h 07m", "3d 04h".
    static func duration(_ seconds: TimeInterval) -> String {
        let s = max(0, Int(seconds))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m \(String(format: "%02d", s % 60))s" }
        if s < 86400 { return "\(s / 3600)h \(String(format: "%02d", s % 3600 / 60))m" }
        return "\(s / 86400)d \(String(format: "%02d", s % 86400 / 3600))h"
    }

    /// A `<time>` element holding the ISO date in `datetime` and the timestamp as text.
    static func time(_ value: JSONValue?) -> HTML {
        guard let d = value?.dateValue else { return "\(value)" }
        return "<time datetime=\"\(iso(d))\">\(timestamp(d))</time>"
    }

    /// Elapsed time since `value`, kept live in the browser.
    static func elapsed(since value: JSONValue?, now: Date = Date()) -> HTML {
        guard let d = value?.dateValue else { return "-" }
        return "<span class=\"elapsed\" data-since=\"\(iso(d))\">\(duration(now.timeIntervalSince(d)))</span>"
    }

    /// The id text of any `_id`-like value.
    static func id(_ value: JSONValue?) -> String {
        guard let value, !value.isNull else { return "-" }
        return JobStore.idText(value)
    }

    /// The job's project reference (`projectId` or `project_id`) as text.
    static func project(_ job: JSONValue) -> String {
        guard job.objectValue != nil else { return "-" }
        return id(Job(job).projectRef)
    }

    /// The job's creation time (`createdAt` or `created_at`).
    static func created(_ job: JSONValue) -> HTML {
        guard job.objectValue != nil, let d = Job(job).createdAt else { return time(job["createdAt"]) }
        return time(.date(d))
    }

    /// A status badge.
    static func status(_ value: JSONValue?) -> HTML {
        let s = value?.stringValue ?? "unknown"
        let known = JobStatus(rawValue: s)?.rawValue ?? "unknown"
        return "<span class=\"badge status-\(known)\">\(s)</span>"
    }

    /// A link to `url` when it is https, else the text.
    static func link(_ url: String?) -> HTML {
        guard let url else { return "-" }
        if let u = URL(string: url), u.scheme?.lowercased() == "https", u.host != nil {
            return "<a href=\"\(url)\" rel=\"noopener noreferrer\">\(url)</a>"
        }
        return "<code>\(url)</code>"
    }
}
