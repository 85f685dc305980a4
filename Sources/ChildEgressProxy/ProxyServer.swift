#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// The job's egress proxy: a forward proxy on a Unix socket. It serves
/// `CONNECT host:port` and plain-HTTP requests in absolute form to the
/// destinations its `EgressPolicy` allows, and `/provider/…` and `/gemini/…`
/// requests by forwarding them to the Cline provider or the Gemini API with
/// the real key (ProviderRoute).
/// Every refusal is one `denied` event on stdout, every destination let through one `allowed` event.
public final class ProxyServer: Sendable {
    let ticket: EgressProxyTicket
    let policy: EgressPolicy
    let out: EventWriter
    /// The keyed requests in flight (at most `keyedRequestLimit`).
    let slots: RouteSlots
    /// The job's model-call spend and budget.
    let meter: Meter
    /// How long a tunnel or a plain-HTTP answer may pass no byte either way before it is closed.
    let idleSeconds: Int

    /// How long a tunnel may stay silent both ways (`idleSeconds`' default).
    public static let tunnelIdleSeconds = 300
    /// How many keyed requests (both routes together) one proxy serves at
    /// once, from the head to the end of the answer; more get a 429. It
    /// bounds what their bodies hold (8 × 16 MiB) and the spend an agent can
    /// run up at once.
    public static let keyedRequestLimit = 8

    /// `keyedLimit` and `idleSeconds` are the defaults but in tests.
    public init(ticket: EgressProxyTicket, out: EventWriter, keyedLimit: Int = ProxyServer.keyedRequestLimit,
                idleSeconds: Int = ProxyServer.tunnelIdleSeconds) {
        self.ticket = ticket
        policy = EgressPolicy(rules: ticket.rules)
        self.out = out
        slots = RouteSlots(limit: keyedLimit)
        meter = Meter(budget: ticket.budget, prices: ticket.prices,
                      shared: ticket.dailyBudgetUSD.map { SharedSpend(budgetUSD: $0, out: out) })
        self.idleSeconds = idleSeconds
    }

    /// How long a client may stay silent while its request head or body is
    /// read (SO_RCVTIMEO), and how long its whole head may take: an idle or
    /// trickling connection does not hold one of the server's slots for ever.
    /// An opened tunnel or relay is bound by `idleSeconds` instead.
    public static let clientReceiveTimeout = 60
    /// How long one write to a client that stops reading may block (SO_SNDTIMEO):
    /// such a client cannot hold a slot for ever either.
    public static let clientSendTimeout = 300

    /// Handles one client connection to the end.
    public func handle(_ client: Int32) {
        var tv = timeval(tv_sec: Self.clientReceiveTimeout, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var send = timeval(tv_sec: Self.clientSendTimeout, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &send, socklen_t(MemoryLayout<timeval>.size))
        let deadline = ContinuousClock.now + .seconds(Self.clientReceiveTimeout)
        guard let (head, rest) = SocketIO.readHead(client, deadline: deadline) else { return }
        guard let request = HTTPHead(head) else {
            return refuse(client, target: "?", .badRequest, "unreadable request")
        }
        if request.method == "CONNECT" {
            guard let (host, port) = Self.authority(request.target) else {
                return refuse(client, target: request.target, .badRequest, "CONNECT needs host:port")
            }
            tunnel(client, host: host, port: port, early: rest)
        } else if request.target.hasPrefix("/") {
            guard Self.isProviderPath(request.target) else {
                return refuse(client, target: request.target, .badRequest, "not a proxy request (use absolute URLs or CONNECT)")
            }
            ProviderRoute(ticket: ticket, out: out, slots: slots, meter: meter).forward(client, request: request, early: rest)
        } else if let url = URLParts(request.target), url.scheme == "http" {
            if Self.isProviderPath(url.path), ["127.0.0.1", "localhost", "::1"].contains(url.host) {
                var local = request
                local.target = url.path
                return ProviderRoute(ticket: ticket, out: out, slots: slots, meter: meter).forward(client, request: local, early: rest)
            }
            forward(client, request: request, url: url, early: rest)
        } else {
            refuse(client, target: request.target, .badRequest, "only CONNECT and http:// requests are proxied")
        }
    }

    /// Whether `path` is one of the keyed routes (`/provider…`, `/gemini…`).
    static func isProviderPath(_ path: String) -> Bool {
        hasPrefix(path, EgressProxyTicket.providerPrefix) || hasPrefix(path, GeminiRoute.prefix)
    }

    /// Whether `path` is `prefix` or under it.
    static func hasPrefix(_ path: String, _ prefix: String) -> Bool {
        path == prefix || path.hasPrefix(prefix + "/") || path.hasPrefix(prefix + "?")
    }

    /// host and port of "host:port" or "[v6]:port".
    static func authority(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// The destination's addresses for a tunnel or a plain-HTTP request, or nil after refusing the client.
    func admit(_ client: Int32, host: String, port: Int, tunnel: Bool) -> [IPAddress]? {
        let target = (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        switch policy.decide(host: host, port: port, tunnel: tunnel) {
        case .allow(let addresses):
            out.emit(EgressEvent(.allowed, target: target, detail: tunnel ? "CONNECT" : "plain HTTP"))
            return addresses
        case .deny(let reason, let why):
            refuse(client, target: target, reason, why)
            return nil
        }
    }

    private func tunnel(_ client: Int32, host: String, port: Int, early: [UInt8]) {
        guard let addresses = admit(client, host: host, port: port, tunnel: true) else { return }
        guard let upstream = try? SocketIO.connectTCP(addresses, port: port) else {
            try? writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        defer { close(upstream) }
        guard (try? writeAll(client, Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8))) != nil else { return }
        if !early.isEmpty, (try? writeAll(upstream, early)) == nil { return }
        SocketIO.relay(client, upstream, idleSeconds: idleSeconds)
    }

    /// host[:port] of `url` for a Host header (the port when not 80; IPv6 in brackets).
    static func hostHeader(_ url: URLParts) -> String {
        (url.host.contains(":") ? "[\(url.host)]" : url.host) + (url.port == 80 ? "" : ":\(url.port)")
    }

    func refuse(_ client: Int32, target: String, _ reason: DenyReason, _ why: String, status: String? = nil) {
        let line = "egress denied: \(target) (\(why))\n"
        let status = status ?? (reason == .badRequest ? "400 Bad Request" : "403 Forbidden")
        // The event first: by the time the agent sees the refusal, the job's log has it.
        out.emit(EgressEvent(.denied, target: target, reason: reason.rawValue, detail: why))
        try? writeAll(client, Array(("HTTP/1.1 \(status)\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + "Content-Length: \(line.utf8.count)\r\n\r\n" + line).utf8))
    }
}

/// Writes the proxy's NDJSON events, one whole line at a time.
public final class EventWriter: Sendable {
    private let lock = Locked(())
    private let fd: Int32
    public init(fd: Int32 = 1) { self.fd = fd }
    public func emit(_ event: EgressEvent) {
        guard let data = try? JSONEncoder().encode(event) else { return }
        lock.withLock { _ in try? writeAll(fd, Array(data) + [0x0A]) }
    }
}
