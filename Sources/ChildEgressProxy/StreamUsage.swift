import Foundation
import RunnerCore

/// OpenAI's chat completions stream their usage only when the request asks
/// (`stream_options.include_usage`), in one extra chunk with no choices
/// before `[DONE]`. The proxy asks for it when the agent did not, and then
/// takes that chunk out before the agent sees it (`UsageChunkFilter`).
enum StreamUsage {
    /// The body with `stream_options.include_usage: true` when it streams
    /// and does not ask for the usage already; nil to send it unchanged.
    static func requestingUsage(_ body: [UInt8]) -> [UInt8]? {
        guard body.firstRange(of: Array("\"stream\"".utf8)) != nil,
              let json = try? JSONValue.parse(Data(body)), var object = json.objectValue,
              object["stream"] == .bool(true), object["stream_options"]?["include_usage"] != .bool(true)
        else { return nil }
        var options = object["stream_options"]?.objectValue ?? [:]
        options["include_usage"] = true
        object["stream_options"] = .object(options)
        return Array(JSONValue.object(object).jsonString.utf8)
    }
}

/// Takes the usage-only chunk (`choices: []` and a `usage`) out of a chat
/// completion's event stream, passing every other event through unchanged,
/// each as soon as its blank line arrives.
struct UsageChunkFilter {
    private var event: [UInt8] = []
    private var line: [UInt8] = []
    /// An event larger than this is passed on without a look (a usage chunk is small).
    static let eventCap = 64 << 10

    /// What of `bytes` may go to the agent now.
    mutating func pass(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out: [UInt8] = []
        for b in bytes {
            line.append(b)
            guard b == 10 else {
                // A line without end is passed on as it comes, never buffered past the cap.
                if line.count > Self.eventCap {
                    out += event + line
                    event.removeAll(keepingCapacity: true)
                    line.removeAll(keepingCapacity: true)
                }
                continue
            }
            let blank = line == [10] || line == [13, 10]
            event += line
            line.removeAll(keepingCapacity: true)
            if blank {
                if !Self.isUsageChunk(event) { out += event }
                event.removeAll(keepingCapacity: true)
            } else if event.count > Self.eventCap {
                out += event
                event.removeAll(keepingCapacity: true)
            }
        }
        return out
    }

    /// Whatever is left at the end of the answer.
    mutating func finish() -> [UInt8] {
        defer { event = []; line = [] }
        return Self.isUsageChunk(event + line) ? [] : event + line
    }

    /// Whether `event` is one `data:` chunk with an empty `choices` and a `usage` object.
    static func isUsageChunk(_ event: [UInt8]) -> Bool {
        guard event.firstRange(of: Array("\"usage\"".utf8)) != nil else { return false }
        let text = String(decoding: event, as: UTF8.self)
        let data = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("data:") }
        guard data.count == 1, let json = try? JSONValue.parse(String(data[0].dropFirst(5))) else { return false }
        return json["choices"]?.arrayValue?.isEmpty == true && json["usage"]?.objectValue != nil
    }
}
