#if canImport(Glibc)
import Glibc
#endif
import ChildHTTP
import Foundation
import RunnerCore

/// The keyed routes: the agent calls `/provider/<path>` on its loopback
/// proxy port with a placeholder key (Cline's provider); the job child's
/// Gemini generator and the doctor's probe call `/gemini/<path>` with the
/// job's route token (`GeminiRoute`). Either way it forwards model calls
/// only (`RouteAllowlist`: method and path, a 403 for anything else), keeps
/// only the caller's allowlisted headers (no credential among them), adds the
/// real key in the upstream's header and, on the provider route, the
/// operator's CLINE_PROVIDER_HEADERS, and forwards the request over libcurl
/// (TLS verified) to the upstream's base URL + `<path>`. The response streams back as it arrives (server-sent
/// events included). Only this process holds the keys.
struct ProviderRoute {
    let ticket: EgressProxyTicket
    let out: EventWriter
    /// The keyed requests in flight, shared by the server's connections (`ProxyServer.keyedRequestLimit`).
    let slots: RouteSlots
    /// The job's spend and budget, shared likewise.
    let meter: Meter

    /// Where one keyed request goes.
    struct Upstream {
        /// "provider" or "gemini", for the log.
        let name: String
        let prefix: String
        let baseURL: String
        /// The API it speaks: which paths and methods are forwarded.
        let dialect: RouteAllowlist.Dialect
        /// The key's header, then the operator's CLINE_PROVIDER_HEADERS.
        let addedHeaders: [(name: String, value: String)]
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
                out.emit(EgressEvent(.denied, target: GeminiRoute.prefix, reason: DenyReason.notAllowed.rawValue,
                                     detail: "the Gemini route needs the job's route token"))
                return nil
            }
            return Upstream(name: "gemini", prefix: GeminiRoute.prefix, baseURL: gemini.apiBase, dialect: .gemini,
                            addedHeaders: [("x-goog-api-key", gemini.apiKey)])
        }
        guard let provider = ticket.provider, let key = ticket.providerKey else {
            fail(client, 503, "provider: no Cline provider is configured (CLINE_PROVIDER and CLINE_API_KEY)")
            return nil
        }
        return Upstream(name: "provider", prefix: EgressProxyTicket.providerPrefix, baseURL: provider.upstreamBaseURL,
                        dialect: RouteAllowlist.Dialect(provider.kind),
                        addedHeaders: provider.authHeaders(key: key) + ticket.providerHeaders.map { ($0.name, $0.value) })
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
        let shown = upstream.prefix + (path.split(separator: "?", omittingEmptySubsequences: false).first.map(String.init) ?? "")
        guard RouteAllowlist.allows(upstream.dialect, method: request.method, path: path) else {
            fail(client, 403, "\(upstream.name): \(request.method) \(shown) is not a model call (only generation, "
                + "its streaming form, token counting and the model listing are forwarded)", log: false)
            out.emit(EgressEvent(.denied, target: "\(request.method) \(shown)", reason: DenyReason.notAModelCall.rawValue,
                                 detail: "\(upstream.name) route: not a model call"))
            return
        }
        guard slots.acquire() else {
            return fail(client, 429, "\(upstream.name): \(slots.limit) requests are already in flight; retry when one ends",
                        extra: "Retry-After: 1\r\n")
        }
        defer { slots.release() }
        var body: [UInt8]
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
        // A model call is metered, and refused once the job's budget is spent.
        let shape = UsageReader.shape(upstream.dialect, method: request.method, path: path)
        if shape != nil, let (why, answer) = MeteredCall.unpricedRefusal(
            upstream.dialect, model: MeteredCall.requestModel(body) ?? MeteredCall.geminiPathModel(path), meter: meter) {
            out.emit(EgressEvent(.denied, target: "\(request.method) \(shown)", reason: DenyReason.unpricedModel.rawValue,
                                 detail: "\(upstream.name) route: " + why))
            try? writeAll(client, answer)
            return
        }
        var stripUsageChunk = false
        if shape == .chat, let asking = StreamUsage.requestingUsage(body) {
            body = asking
            stripUsageChunk = true
        }
        // Under a budget, the call's bound (an output limit added when the request has none).
        var bound: Double?
        if let shape, !meter.budget.isEmpty || meter.shared != nil {
            let price = (MeteredCall.requestModel(body) ?? MeteredCall.geminiPathModel(path)).flatMap(meter.prices.price)
            let remaining = meter.remaining
            let openAI = upstream.name == "provider" && ticket.provider?.kind == .openai
            (body, bound, _) = CallBound.prepare(body, shape: shape, path: path, openAI: openAI, price: price,
                                                 remainingUSD: remaining.usd, remainingTokens: remaining.tokens)
        }
        var reservation: SpendReservation?
        if shape != nil {
            switch meter.admit(bound: bound) {
            case .admitted(let r): reservation = r
            case .refused(let spent):
                // The supervisor hears of it first: it stops the job whatever the agent does with the answer.
                out.emit(EgressEvent(.budget, detail: "\(upstream.name): \(request.method) \(shown) refused", budget: spent))
                try? writeAll(client, MeteredCall.refusal(upstream.dialect, spent))
                return
            }
        }
        var base = upstream.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        let url = base + (path.isEmpty || path.hasPrefix("/") || path.hasPrefix("?") ? path : "/" + path)
        // Only the allowlisted headers of the caller; a name the operator sets is the operator's.
        // A model call's answer comes uncompressed, so that its usage can be read.
        let added = Set(upstream.addedHeaders.map { $0.name.lowercased() })
        var headers = request.headers.filter { name, _ in
            RouteAllowlist.forwardedHeaders.contains(name.lowercased()) && !added.contains(name.lowercased())
                && (shape == nil || name.lowercased() != "accept-encoding")
        }.map { "\($0.0): \($0.1)" }
        headers += upstream.addedHeaders.map { "\($0.name): \($0.value)" }
        let call = MeteredCall(route: upstream.name, dialect: upstream.dialect, path: path)
        let plainPath = path.split(separator: "?").first.map(String.init) ?? ""
        let retry = ticket.retry ?? ProviderRetry()
        var exchange: Exchange
        var failure: Error?
        var retries = 0, waited = 0.0
        while true {
            exchange = Exchange(client: client, usage: shape.map(UsageReader.init), stripUsageChunk: stripUsageChunk,
                                holdRetryable: true)
            failure = nil
            do {
                // Model answers can take minutes; a stalled one ends after 5 minutes of silence.
                _ = try CurlEasy().perform(url, method: request.method, headers: headers,
                                           body: ["GET", "HEAD"].contains(request.method) ? nil : body,
                                           connectTimeout: 15, timeout: .stalled(300), receiver: exchange)
            } catch {
                failure = error
            }
            // A provider's fault is tried again only while nothing of its answer has reached the caller.
            let cut = (failure as? CurlError)?.isConnectionFailure == true && exchange.status == 0
            if (exchange.held || cut) && !exchange.headSent && exchange.bytesSent == 0,
               let delay = retry.delay(attempt: retries, retryAfter: exchange.retryDelay, waited: waited) {
                let why = exchange.held ? "answered \(exchange.status)" : "connection failed (\(failure.map { "\($0)" } ?? "?"))"
                out.emit(EgressEvent(.retry, detail: "\(upstream.name): \(request.method) \(plainPath) \(why); retry "
                    + "\(retries + 1) of \(retry.retries) in \(String(format: "%.1f", delay)) s"))
                Thread.sleep(forTimeInterval: delay)
                waited += delay
                retries += 1
                continue
            }
            exchange.release()
            if failure == nil { exchange.finish() }
            break
        }
        if let failure, !exchange.headSent {
            // Before the answer's head went out, the client gets the reason; after, it sees the cut.
            fail(client, 502, "\(upstream.name) request failed: \(failure)")
        }
        guard let reader = exchange.usage else {
            if failure == nil || exchange.headSent {
                out.emit(EgressEvent(.log, detail: "\(upstream.name): \(request.method) \(plainPath) -> \(exchange.status)"))
            }
            return
        }
        let usage = call.usage(reader, status: failure == nil ? exchange.status : 0, body: body, meter: meter, retries: retries)
        out.emit(EgressEvent(.usage, detail: "\(upstream.name): \(request.method) \(plainPath)", usage: usage,
                             reservation: reservation))
        for notice in meter.record(usage) { out.emit(EgressEvent(.budget, budget: notice)) }
    }

    /// The proxy's own error answer, in the shape Google's and OpenAI's
    /// clients both read (`error.message`), with `error.status` EGRESS_PROXY.
    private func fail(_ client: Int32, _ status: Int, _ message: String, extra: String = "", log: Bool = true) {
        let json: JSONValue = ["error": ["code": .int(Int64(status)), "status": "EGRESS_PROXY", "message": .string(message)]]
        let text = json.jsonString + "\n"
        try? writeAll(client, Array(("HTTP/1.1 \(status) Error\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + extra + "Content-Length: \(text.utf8.count)\r\n\r\n" + text).utf8))
        if log { out.emit(EgressEvent(.log, detail: message)) }
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

/// A count of the keyed requests in flight, shared by a server's connections.
final class RouteSlots: Sendable {
    let limit: Int
    private let inFlight = Locked(0)

    init(limit: Int) { self.limit = limit }

    /// Takes a slot; false when `limit` are taken.
    func acquire() -> Bool {
        inFlight.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func release() { inFlight.withLock { $0 -= 1 } }
}
