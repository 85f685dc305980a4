import Foundation
import RunnerCore

/// Reads a model call's token usage from its answer as the bytes pass
/// through the proxy, in the dialect's own form (docs/budgets.md):
/// - Anthropic: `usage` of the message, or of `message_start` and
///   `message_delta` events (the later values win: they are cumulative);
/// - OpenAI chat completions: `usage` of the answer or of the last chunk;
/// - OpenAI responses: `usage` of the answer or of `response.completed`
///   (any event's `response.usage`);
/// - Gemini: `usageMetadata` of the answer, of each streamed chunk (the last
///   wins), or of each element of a JSON array (streamGenerateContent without `alt=sse`).
/// A server-sent event stream is read line by line and only lines that name
/// a usage are parsed; another answer is kept up to `bodyCap` and parsed once at its end.
struct UsageReader {
    /// Which usage form the call's answer has.
    enum Shape: Equatable {
        case anthropic, chat, responses, gemini
    }

    let shape: Shape
    /// Set from the answer's Content-Type.
    var streamed = false
    private(set) var model: String?
    private(set) var input = 0, output = 0, cacheRead = 0, cacheWrite = 0
    /// Whether a usage was found.
    private(set) var found = false
    private var line: [UInt8] = []
    private var body: [UInt8] = []
    private var overCap = false

    /// The most of a non-streamed answer kept for its usage.
    static let bodyCap = 8 << 20
    /// The longest server-sent event line read for a usage (longer ones are skipped).
    static let lineCap = 1 << 20

    init(shape: Shape) { self.shape = shape }

    /// The shape of a model call on `dialect`'s `path`; nil for a call that is not a generation.
    static func shape(_ dialect: RouteAllowlist.Dialect, method: String, path: String) -> Shape? {
        guard method == "POST" else { return nil }
        let plain = String(path.prefix { $0 != "?" && $0 != "#" })
        switch dialect {
        case .anthropic: return plain == "/v1/messages" ? .anthropic : nil
        case .openai:
            let rest = plain.hasPrefix("/v1/") ? String(plain.dropFirst(3)) : plain
            if rest == "/chat/completions" || rest == "/completions" { return .chat }
            return rest == "/responses" ? .responses : nil
        case .gemini:
            if plain.hasSuffix("/openai/chat/completions") { return .chat }
            return plain.hasSuffix(":generateContent") || plain.hasSuffix(":streamGenerateContent") ? .gemini : nil
        }
    }

    /// The answer's bytes, in order.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard streamed else {
            guard !overCap else { return }
            if body.count + bytes.count > Self.bodyCap { overCap = true; body = []; return }
            body.append(contentsOf: bytes)
            return
        }
        var start = 0
        for (i, b) in bytes.enumerated() where b == 10 {
            append(UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            consumeLine()
            start = i + 1
        }
        append(UnsafeRawBufferPointer(rebasing: bytes[start...]))
    }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if line.count + bytes.count > Self.lineCap { line = [0]; return } // a marker: skipped at its end
        if line.first == 0 { return }
        line.append(contentsOf: bytes)
    }

    /// The answer ended.
    mutating func finish() {
        if streamed {
            consumeLine()
        } else if !overCap, !body.isEmpty, let json = try? JSONValue.parse(Data(body)) {
            if let array = json.arrayValue { array.forEach { apply($0) } } else { apply(json) }
            body = []
        }
    }

    private mutating func consumeLine() {
        defer { line.removeAll(keepingCapacity: true) }
        guard line.first != 0 else { return }
        // "data:" then the payload; other fields (event:, id:) carry no usage.
        guard line.count > 5, line.starts(with: Self.dataField) else { return }
        guard line.firstRange(of: Self.usageWord) != nil else { return }
        let payload = line.dropFirst(5)
        guard let json = try? JSONValue.parse(Data(payload)) else { return }
        apply(json)
    }

    static let dataField = Array("data:".utf8)
    static let usageWord = Array("usage".utf8) // also in "usageMetadata"

    /// Takes the usage of one answer or event.
    mutating func apply(_ json: JSONValue) {
        switch shape {
        case .anthropic:
            let message = json["message"] ?? json
            if let m = message["model"]?.stringValue { model = m }
            guard let u = json["usage"] ?? message["usage"], u.objectValue != nil else { return }
            take(u["input_tokens"], \.input)
            take(u["output_tokens"], \.output)
            take(u["cache_read_input_tokens"], \.cacheRead)
            take(u["cache_creation_input_tokens"], \.cacheWrite)
            found = true
        case .chat:
            if let m = json["model"]?.stringValue { model = m }
            guard let u = json["usage"], u.objectValue != nil else { return }
            let cached = Self.count(u["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0)
            if let prompt = u["prompt_tokens"]?.intValue { input = max(Self.count(prompt) - cached, 0) }
            cacheRead = cached
            take(u["completion_tokens"], \.output)
            found = true
        case .responses:
            let response = json["response"] ?? json
            if let m = response["model"]?.stringValue { model = m }
            guard let u = response["usage"], u.objectValue != nil else { return }
            let cached = Self.count(u["input_tokens_details"]?["cached_tokens"]?.intValue ?? 0)
            if let prompt = u["input_tokens"]?.intValue { input = max(Self.count(prompt) - cached, 0) }
            cacheRead = cached
            take(u["output_tokens"], \.output)
            found = true
        case .gemini:
            if let m = json["modelVersion"]?.stringValue { model = m }
            guard let u = json["usageMetadata"], u.objectValue != nil else { return }
            func n(_ key: String) -> Int { Self.count(u[key]?.intValue ?? 0) }
            let cached = n("cachedContentTokenCount")
            input = max(n("promptTokenCount") + n("toolUsePromptTokenCount") - cached, 0)
            cacheRead = cached
            output = n("candidatesTokenCount") + n("thoughtsTokenCount")
            found = true
        }
    }

    private mutating func take(_ value: JSONValue?, _ field: WritableKeyPath<UsageReader, Int>) {
        if let v = value?.intValue { self[keyPath: field] = Self.count(v) }
    }

    /// A count from the answer: not negative, at most 2^48 (a provider's answer is not trusted blindly).
    static func count(_ v: Int64) -> Int { Int(min(max(v, 0), 1 << 48)) }
}
