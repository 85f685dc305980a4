import ChildHTTP
import Foundation
import RunnerCore

/// The Gemini API generator over libcurl: one `generateContent` call asking
/// for `{"files":[{"path","content"}]}` as JSON, bounded retries of
/// 429/500/503 honouring `RetryInfo.retryDelay`, other errors at once with
/// Google's message. It never holds the key: it calls the egress proxy's
/// Gemini route (`GeminiRoute`) with the job's route token, and the proxy
/// adds `x-goog-api-key` and forwards to GEMINI_API_BASE.
public struct GeminiGenerator {
    public let settings: ChildSettings
    public let route: GeminiRoute
    public let log: (String) -> Void
    /// At most this many requests, and this much waiting between them.
    public var maxAttempts = 4
    public var maxTotalWait: Double = 120

    public init(settings: ChildSettings, route: GeminiRoute, log: @escaping (String) -> Void) {
        self.settings = settings
        self.route = route
        self.log = log
    }

    /// The generateContent path under the API base (and under the route).
    public var path: String { "/v1beta/models/\(settings.geminiModel):generateContent" }

    /// One request through the route: the proxy's socket, the token header.
    func call(_ path: String, body: Data?, totalTimeout: Int, maxResponseBytes: Int) throws -> HTTPResponse {
        var headers = ["\(GeminiRoute.tokenHeader): \(route.token)"]
        if body != nil { headers.append("Content-Type: application/json") }
        // Workspaces can be deep: a socket path too long for sockaddr_un goes through its folder's descriptor.
        return try UnixSocket.withShortPath(route.socketPath) { socket in
            try CurlEasy().post("http://egress-proxy" + GeminiRoute.prefix + path, headers: headers, body: body,
                                connectTimeout: 10, totalTimeout: totalTimeout, maxResponseBytes: maxResponseBytes,
                                unixSocket: socket)
        }
    }

    /// The system instruction: the output format and, from the `Catalogue`,
    /// what each kind of component becomes (the brief's table says which is which).
    static let systemInstruction = """
    You are a senior software engineer. Generate a complete, runnable starter codebase for the architecture \
    you are given. Answer with JSON only: {"files": [{"path": "relative/path", "content": "file text"}]}. \
    Paths are relative, use '/', never start with '/', never contain '..' or '.git'. Include a README.md.
    Each component in the brief's table says what it must become, following these rules:

    """ + Catalogue.rules

    /// The request body: system instruction, the brief and the spec, JSON output with a schema.
    public func requestBody(instructions: String, spec: String) -> JSONValue {
        let fileSchema: JSONValue = ["type": "OBJECT", "properties": ["path": ["type": "STRING"], "content": ["type": "STRING"]],
                                     "required": ["path", "content"]]
        return [
            "systemInstruction": ["parts": [["text": .string(Self.systemInstruction)]]],
            "contents": [["role": "user", "parts": [
                ["text": .string(instructions)], ["text": .string("spec.json:\n" + spec)],
            ]]],
            "generationConfig": [
                "responseMimeType": "application/json",
                "responseSchema": ["type": "OBJECT", "properties": ["files": ["type": "ARRAY", "items": fileSchema]],
                                   "required": ["files"]],
            ],
        ]
    }

    /// Calls the API and returns the generated files (not yet checked: the
    /// tree writer checks every path before writing).
    public func generate(instructions: String, spec: String) throws -> [(path: String, content: String)] {
        let body = Data(requestBody(instructions: instructions, spec: spec).jsonString.utf8)
        let cap = settings.maxTotalMB * 2 * 1_048_576 + 1_048_576
        var waited = 0.0
        for attempt in 1...maxAttempts {
            let response: HTTPResponse
            do {
                response = try call(path, body: body, totalTimeout: settings.geminiTimeoutSeconds, maxResponseBytes: cap)
            } catch let e as CurlError {
                if e.isTimeout {
                    throw JobFailure(.generationFailed, "gemini: no answer within GEMINI_TIMEOUT_SECONDS=\(settings.geminiTimeoutSeconds)")
                }
                throw JobFailure(.generationFailed, "gemini: \(e.message)", retryable: e.code != 23)
            }
            let json = try? JSONValue.parse(response.body)
            if Self.isProxyError(json) {
                // The route could not reach the API (or refused): as a transport failure, worth another attempt.
                throw JobFailure(.generationFailed, "gemini: \(Self.errorMessage(json, status: response.status))",
                                 retryable: response.status >= 500)
            }
            switch response.status {
            case 200: return try Self.files(fromResponse: json)
            case 429, 500, 503:
                let message = Self.errorMessage(json, status: response.status)
                let delay = Self.retryDelay(json) ?? min(pow(2, Double(attempt)), 30)
                guard attempt < maxAttempts, waited + delay <= maxTotalWait else {
                    throw JobFailure(.generationFailed, "gemini: \(message) (gave up after \(attempt) attempts)")
                }
                log("gemini: \(message); retrying in \(String(format: "%.1f", delay)) s (attempt \(attempt + 1) of \(maxAttempts))")
                waited += delay
                Thread.sleep(forTimeInterval: delay)
            default:
                throw JobFailure(.generationFailed, "gemini: \(Self.errorMessage(json, status: response.status))",
                                 retryable: false)
            }
        }
        throw JobFailure(.generationFailed, "gemini: no answer")
    }

    /// One GET of the model's description: proves the base URL, the key and
    /// the model name (for `doctor --online`). Returns nil when fine, else why not.
    public func checkModel() -> String? {
        do {
            let r = try call("/v1beta/models/\(settings.geminiModel)", body: nil, totalTimeout: 20, maxResponseBytes: 1 << 20)
            return r.status == 200 ? nil : Self.errorMessage(try? JSONValue.parse(r.body), status: r.status)
        } catch {
            return "\(error)"
        }
    }

    /// Whether the answer is the egress proxy's own error (`error.status` EGRESS_PROXY), not the API's.
    static func isProxyError(_ json: JSONValue?) -> Bool {
        json?["error"]?["status"]?.stringValue == "EGRESS_PROXY"
    }

    /// Google's error `status: message`, or the HTTP status.
    static func errorMessage(_ json: JSONValue?, status: Int) -> String {
        let e = json?["error"]
        let text = [e?["status"]?.stringValue, e?["message"]?.stringValue].compactMap { $0 }.joined(separator: ": ")
        return "HTTP \(status)" + (text.isEmpty ? "" : " \(text)")
    }

    /// `RetryInfo.retryDelay` ("1.5s") from an error's details, in seconds.
    static func retryDelay(_ json: JSONValue?) -> Double? {
        for d in json?["error"]?["details"]?.arrayValue ?? [] where d["@type"]?.stringValue?.hasSuffix("RetryInfo") == true {
            if let s = d["retryDelay"]?.stringValue, s.hasSuffix("s"), let v = Double(s.dropLast()), v >= 0 { return v }
        }
        return nil
    }

    /// The files from a 200 response: candidates' text parts joined, finish
    /// reasons and blocks named, then the JSON (structured, map or fenced).
    public static func files(fromResponse json: JSONValue?) throws -> [(path: String, content: String)] {
        guard let json else { throw JobFailure(.generationFailed, "gemini: the response is not JSON") }
        if let reason = json["promptFeedback"]?["blockReason"]?.stringValue {
            throw JobFailure(.generationFailed, "gemini: the prompt was blocked (\(reason))", retryable: false)
        }
        guard let candidate = json["candidates"]?.arrayValue?.first else {
            throw JobFailure(.generationFailed, "gemini: the response has no candidates")
        }
        switch candidate["finishReason"]?.stringValue ?? "STOP" {
        case "STOP", "FINISH_REASON_UNSPECIFIED": break
        case "MAX_TOKENS":
            throw JobFailure(.generationFailed, "gemini: the output was truncated (finishReason MAX_TOKENS)", retryable: false)
        case let other:
            throw JobFailure(.generationFailed, "gemini: the answer was blocked (finishReason \(other))", retryable: false)
        }
        let text = (candidate["content"]?["parts"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
        return try files(fromText: text)
    }

    /// Parses `{"files":[{path,content}]}`, the seed's `{"files":{path:content}}`, or either inside a code fence.
    public static func files(fromText raw: String) throws -> [(path: String, content: String)] {
        var text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("```") {
            if let nl = text.firstIndex(of: "\n") { text = String(text[text.index(after: nl)...]) }
            if let end = text.range(of: "```", options: .backwards) { text = String(text[..<end.lowerBound]) }
        }
        guard let value = try? JSONValue.parse(text) else {
            throw JobFailure(.generationFailed, "gemini: the answer is not the expected JSON")
        }
        if let list = value["files"]?.arrayValue {
            return try list.enumerated().map { i, f in
                guard let p = f["path"]?.stringValue, let c = f["content"]?.stringValue else {
                    throw JobFailure(.generationFailed, "gemini: files[\(i)] needs string path and content")
                }
                return (p, c)
            }
        }
        if let map = value["files"]?.objectValue {
            return try map.keys.sorted().map { k in
                guard let c = map[k]?.stringValue else { throw JobFailure(.generationFailed, "gemini: files[\(k)] is not a string") }
                return (k, c)
            }
        }
        throw JobFailure(.generationFailed, "gemini: the answer has no files")
    }
}
