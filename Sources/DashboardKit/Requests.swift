import Foundation
import JobStore
import RunnerCore

/// A request the dashboard refuses with 400, naming the bad parameter.
public struct BadRequest: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// `application/x-www-form-urlencoded` text (forms and query strings).
public enum FormData {
    /// Name → value (the first of repeated names wins). Throws on bad percent-encoding.
    public static func parse(_ text: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else {
                throw BadRequest(message: "malformed percent-encoding in the query or form")
            }
            if out[name] == nil { out[name] = value }
        }
        return out
    }

    static func decode(_ s: Substring) -> String? {
        String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}

/// The jobs list's query: filter, page and page size, validated.
public struct JobsQuery: Sendable {
    public static let maxPage = 10_000
    public let filter: JobFilter
    public let page: Int
    public let limit: Int

    /// Parses `status`, `project`, `q`, `page` (1...10000) and `limit` (1...200).
    public init(_ params: [String: String], defaultLimit: Int = 50) throws {
        do {
            filter = try JobFilter(status: params["status"], projectId: params["project"], text: params["q"])
        } catch let e as JobFilterError {
            throw BadRequest(message: e.description)
        }
        page = try Self.int(params["page"], name: "page", range: 1...Self.maxPage, default: 1)
        limit = try Self.int(params["limit"], name: "limit", range: 1...200, default: defaultLimit)
    }

    static func int(_ text: String?, name: String, range: ClosedRange<Int>, default value: Int) throws -> Int {
        guard let text, !text.isEmpty else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw BadRequest(message: "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }
}

/// Ids taken from a URL: printable and short, else treated as unknown (404).
enum PathID {
    static func valid(_ s: String?) -> String? {
        guard let s, !s.isEmpty, s.count <= 128,
              !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return nil }
        return s
    }
}

/// Documents as the API returns them: plain JSON, with ObjectIds as hex
/// strings, dates as ISO 8601 strings and 64-bit numbers as numbers.
public enum APIJSON {
    public static func plain(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let o):
            if o.count == 1, let oid = o["$oid"]?.stringValue { return .string(oid) }
            if o.count == 1, o["$date"] != nil, let d = value.dateValue { return .string(d.formatted(.iso8601)) }
            if o.count == 1, let n = o["$numberLong"]?.stringValue, let i = Int64(n) { return .int(i) }
            return .object(o.mapValues(plain))
        case .array(let a):
            return .array(a.map(plain))
        default:
            return value
        }
    }

    /// A job's row in lists.
    static func summary(_ job: JSONValue) -> JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(JobStore.idText(job["_id"] ?? nil)),
            "projectId": job.objectValue.flatMap { _ in Job(job).projectRef }.map { .string(JobStore.idText($0)) } ?? nil,
            "status": job["status"] ?? nil, "stage": job["stage"] ?? nil, "attempts": job["attempts"] ?? nil,
            "generator": job["metadata"]?["generator"] ?? nil, "commitSha": job["metadata"]?["commitSha"] ?? nil,
            "runner": job["lease"]?["owner"] ?? nil,
        ]
        for key in ["startedAt", "finishedAt", "updatedAt"] { o[key] = plain(job[key] ?? nil) }
        o["createdAt"] = Job.createdMilliseconds(job).map { .string(Date(timeIntervalSince1970: Double($0) / 1000).formatted(.iso8601)) }
            ?? plain(job["createdAt"] ?? nil)
        if let e = job["error"], !e.isNull { o["error"] = ["code": e["code"] ?? nil, "message": e["message"] ?? nil] }
        return plain(.object(o))
    }

    /// A job's live state (the `stage` events and the logs endpoint), with
    /// its `metadata.checkpoint` when it has one.
    static func state(_ job: JSONValue) -> [String: JSONValue] {
        var o: [String: JSONValue] = ["status": job["status"] ?? nil, "stage": job["stage"] ?? nil,
                                      "attempts": plain(job["attempts"] ?? nil)]
        if let checkpoint = job["metadata"]?["checkpoint"], !checkpoint.isNull { o["checkpoint"] = plain(checkpoint) }
        return o
    }
}
