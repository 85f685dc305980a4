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
/// Every refusal is one `denied` event on stdout.
public final class ProxyServer: Sendable {
    let ticket: EgressProxyTicket
    let policy: EgressPolicy
    let out: EventWriter

    public init(ticket: EgressProxyTicket, out: EventWriter) {
        self.ticket = ticket
        policy = EgressPolicy(rules: ticket.rules)
        self.out = out
    }

    /// Handles one client connection to the end.
    public func handle(_ client: Int32) {
        guard let (head, rest) = SocketIO.readHead(client) else { return }
        guard let request = HTTPHead(head), request.isRequest else {
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
            ProviderRoute(ticket: ticket, out: out).forward(client, request: request, early: rest)
        } else if let url = URLParts(request.target), url.scheme == "http" {
            if Self.isProviderPath(url.path), ["127.0.0.1", "localhost", "::1"].contains(url.host) {
                var local = request
                local.target = url.path
                return ProviderRoute(ticket: ticket, out: out).forward(client, request: local, early: rest)
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

    /// The destination's addresses, or nil after refusing the client.
    private func admit(_ client: Int32, host: String, port: Int) -> [IPAddress]? {
        let target = (host.contains(":") ? "[\(host)]" : host) + ":\(port)"
        switch policy.decide(host: host, port: port) {
        case .allow(let addresses): return addresses
        case .deny(let reason, let why):
            refuse(client, target: target, reason, why)
            return nil
        }
    }

    private func tunnel(_ client: Int32, host: String, port: Int, early: [UInt8]) {
        guard let addresses = admit(client, host: host, port: port) else { return }
        guard let upstream = try? SocketIO.connectTCP(addresses, port: port) else {
            try? writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        defer { close(upstream) }
        guard (try? writeAll(client, Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8))) != nil else { return }
        if !early.isEmpty, (try? writeAll(upstream, early)) == nil { return }
        SocketIO.relay(client, upstream)
    }

    private func forward(_ client: Int32, request: HTTPHead, url: URLParts, early: [UInt8]) {
        guard let addresses = admit(client, host: url.host, port: url.port) else { return }
        guard let upstream = try? SocketIO.connectTCP(addresses, port: url.port) else {
            try? writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        defer { close(upstream) }
        // Origin form, no proxy headers, one request per connection: a second
        // request cannot ride this connection to another destination.
        var head = "\(request.method) \(url.path) \(request.version)\r\n"
        // The body is relayed as bytes, so its framing headers stay.
        for (name, value) in request.headers where !HTTPHead.hopByHop.subtracting(["transfer-encoding", "te", "trailer"])
            .contains(name.lowercased()) {
            head += "\(name): \(value)\r\n"
        }
        head += "Connection: close\r\n\r\n"
        guard (try? writeAll(upstream, Array(head.utf8) + early)) != nil else { return }
        SocketIO.relay(client, upstream)
    }

    private func refuse(_ client: Int32, target: String, _ reason: DenyReason, _ why: String) {
        let line = "egress denied: \(target) (\(why))\n"
        let status = reason == .badRequest ? "400 Bad Request" : "403 Forbidden"
        try? writeAll(client, Array(("HTTP/1.1 \(status)\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + "Content-Length: \(line.utf8.count)\r\n\r\n" + line).utf8))
        out.emit(EgressEvent(type: "denied", target: target, reason: reason.rawValue, detail: why))
    }
}

/// A parsed HTTP/1.x request or response head.
public struct HTTPHead: Sendable {
    public var method = "", target = "", version = "HTTP/1.1"
    public var status = 0
    public var headers: [(String, String)] = []
    public var isRequest: Bool { !method.isEmpty }

    /// Headers never forwarded by a proxy.
    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "proxy-authorization",
                                        "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"]

    public init?(_ text: String) {
        let lines = text.components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ", maxSplits: 2).map(String.init)
        guard first.count >= 2 else { return nil }
        if first[0].hasPrefix("HTTP/") {
            guard let s = Int(first[1]) else { return nil }
            version = first[0]; status = s
        } else {
            guard first.count == 3, first[2].hasPrefix("HTTP/1."), first[0].allSatisfy({ $0.isLetter && $0.isUppercase })
            else { return nil }
            method = first[0]; target = first[1]; version = first[2]
        }
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers.append((String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                            String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
    }

    /// The first value of header `name` (case-insensitive).
    public func value(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
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
