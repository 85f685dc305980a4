#if canImport(Glibc)
import Glibc
#endif
import ChildHTTP
import Foundation
import RunnerCore

/// The keyed routes: the agent calls `/provider/<path>` on its loopback
/// proxy port with a placeholder key (Cline's provider); the job child's
/// Gemini generator and the doctor's probe call `/gemini/<path>` with the
/// job's route token (`GeminiRoute`). Either way this drops every credential
/// header the caller sent, adds the real key in the upstream's header, and
/// forwards the request over libcurl (TLS verified) to the upstream's base
/// URL + `<path>`. The response streams back as it arrives (server-sent
/// events included). Only this process holds the keys.
struct ProviderRoute {
    let ticket: EgressProxyTicket
    let out: EventWriter

    /// Where one keyed request goes.
    struct Upstream {
        /// "provider" or "gemini", for the log.
        let name: String
        let prefix: String
        let baseURL: String
        let authHeaders: [(name: String, value: String)]
    }

    /// The route `target` belongs to, or nil after answering the client.
    private func upstream(_ client: Int32, _ request: HTTPHead) -> Upstream? {
        if ProxyServer.hasPrefix(request.target, GeminiRoute.prefix) {
            guard let gemini = ticket.gemini else {
                fail(client, 503, "gemini: no Gemini route is configured (GOOGLE_GEMINI_API_KEY)")
                return nil
            }
            guard Self.sameToken(request.value(GeminiRoute.tokenHeader), gemini.routeToken) else {
                fail(client, 403, "gemini: refused a request without the job's route token")
                out.emit(EgressEvent(type: "denied", target: GeminiRoute.prefix, reason: DenyReason.notAllowed.rawValue,
                                     detail: "the Gemini route needs the job's route token"))
                return nil
            }
            return Upstream(name: "gemini", prefix: GeminiRoute.prefix, baseURL: gemini.apiBase,
                            authHeaders: [("x-goog-api-key", gemini.apiKey)])
        }
        guard let provider = ticket.provider, let key = ticket.providerKey else {
            fail(client, 503, "provider: no Cline provider is configured (CLINE_PROVIDER and CLINE_API_KEY)")
            return nil
        }
        return Upstream(name: "provider", prefix: EgressProxyTicket.providerPrefix, baseURL: provider.upstreamBaseURL,
                        authHeaders: provider.authHeaders(key: key))
    }

    /// Compares without an early exit on the first differing byte.
    static func sameToken(_ given: String?, _ expected: String) -> Bool {
        guard let given else { return false }
        let a = Array(given.utf8), b = Array(expected.utf8)
        guard a.count == b.count, !b.isEmpty else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    func forward(_ client: Int32, request: HTTPHead, early: [UInt8]) {
        guard let upstream = upstream(client, request) else { return }
        // What an API client sends; no TRACE or the like, which an upstream could answer with the key echoed.
        guard Self.methods.contains(request.method) else {
            return fail(client, 405, "\(upstream.name): method \(request.method) is not forwarded (only \(Self.methods.sorted().joined(separator: ", ")))")
        }
        let path = String(request.target.dropFirst(upstream.prefix.count))
        // libcurl (and the upstream) would resolve "..": /provider/../admin must not leave the base URL's path.
        guard !Self.hasDotSegment(path) else {
            return fail(client, 400, "\(upstream.name): a path with a . or .. segment, or an encoded / or \\")
        }
        let body: [UInt8]
        switch RequestBody.framing(request).flatMap({ framing -> Result<[UInt8], RequestBody.Failure> in
            if framing != .none, request.value("expect")?.lowercased() == "100-continue" {
                try? writeAll(client, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            }
            return RequestBody.read(client, framing, early: early)
        }) {
        case .success(let bytes): body = bytes
        case .failure(.bad(let why)): return fail(client, 400, "\(upstream.name): \(why)")
        case .failure(.tooLarge): return fail(client, 413, "\(upstream.name): a request body over \(RequestBody.cap >> 20) MiB")
        case .failure(.closed): return fail(client, 400, "\(upstream.name): unreadable request body")
        }
        var base = upstream.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let url = base + (path.isEmpty || path.hasPrefix("/") || path.hasPrefix("?") ? path : "/" + path)
        var headers: [String] = []
        for (name, value) in request.headers {
            let n = name.lowercased()
            if HTTPHead.hopByHop.contains(n) || ClineProvider.credentialHeaders.contains(n)
                || ["host", "content-length", "expect", GeminiRoute.tokenHeader.lowercased()].contains(n) { continue }
            headers.append("\(name): \(value)")
        }
        headers += upstream.authHeaders.map { "\($0.name): \($0.value)" }
        let exchange = Exchange(client: client)
        do {
            // Model answers can take minutes; a stalled one ends after 5 minutes of silence.
            _ = try CurlEasy().perform(url, method: request.method, headers: headers,
                                       body: ["GET", "HEAD"].contains(request.method) ? nil : body,
                                       connectTimeout: 15, timeout: .stalled(300), receiver: exchange)
        } catch {
            // Once the answer's head went out, the client sees the cut; before, it gets the reason.
            if !exchange.headSent { return fail(client, 502, "\(upstream.name) request failed: \(error)") }
        }
        out.emit(EgressEvent(type: "log", detail: "\(upstream.name): \(request.method) \(path.split(separator: "?").first ?? "") -> \(exchange.status)"))
    }

    /// The proxy's own error answer, in the shape Google's and OpenAI's
    /// clients both read (`error.message`), with `error.status` EGRESS_PROXY.
    private func fail(_ client: Int32, _ status: Int, _ message: String) {
        let json: JSONValue = ["error": ["code": .int(Int64(status)), "status": "EGRESS_PROXY", "message": .string(message)]]
        let text = json.jsonString + "\n"
        try? writeAll(client, Array(("HTTP/1.1 \(status) Error\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + "Content-Length: \(text.utf8.count)\r\n\r\n" + text).utf8))
        out.emit(EgressEvent(type: "log", detail: message))
    }

    /// The methods the keyed routes forward.
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    /// Whether the path part of `target` has a "." or ".." segment, plain or
    /// percent-encoded (%2e), which libcurl or the upstream would resolve, or
    /// a separator an upstream might decode into one (%2f, %5c, a backslash).
    static func hasDotSegment(_ target: String) -> Bool {
        let path = target.prefix { $0 != "?" && $0 != "#" }
        let lower = path.lowercased()
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("\\") { return true }
        return path.split(separator: "/", omittingEmptySubsequences: false).contains { segment in
            let plain = segment.lowercased().replacingOccurrences(of: "%2e", with: ".")
            return plain == "." || plain == ".."
        }
    }
}

/// One keyed exchange, reached from libcurl's callbacks: collects the
/// response head, sends it to the caller once complete, then streams the body.
final class Exchange: CurlReceiver {
    let client: Int32
    var status = 0
    var headers: [String] = []
    var headSent = false
    var broken = false
    init(client: Int32) { self.client = client }

    func header(_ line: String) -> Bool {
        headerLine(line)
        return !broken
    }

    func headerLine(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .newlines)
        if trimmed.hasPrefix("HTTP/") {
            status = Int(trimmed.split(separator: " ").dropFirst().first ?? "") ?? 0
            headers = []
        } else if trimmed.isEmpty {
            // An interim 1xx head is not relayed; the final one is, once.
            if status >= 200 && !headSent { sendHead() }
        } else if let colon = trimmed.firstIndex(of: ":") {
            let name = trimmed[..<colon].lowercased()
            if !HTTPHead.hopByHop.contains(name) && name != "content-length" { headers.append(trimmed) }
        }
    }

    func sendHead() {
        headSent = true
        let head = "HTTP/1.1 \(status) Provider\r\n" + headers.map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n"
        if (try? writeAll(client, Array(head.utf8))) == nil { broken = true }
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !headSent { sendHead() }
        if broken { return false }
        if (try? writeAll(client, bytes)) == nil { broken = true; return false }
        return true
    }
}
