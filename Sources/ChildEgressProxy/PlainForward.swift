#if canImport(Glibc)
import Glibc
#endif
import RunnerCore

/// Plain HTTP in absolute form (`GET http://host/path`): exactly one request
/// per connection. Its head is sent in origin form with the destination's
/// `Host`, then exactly the body its Content-Length declares; nothing more is
/// read from the client, so a pipelined second request (with any `Host`)
/// never reaches the destination. The answer goes back with
/// `Connection: close`, and the connection ends with it.
extension ProxyServer {
    func forward(_ client: Int32, request: HTTPHead, url: URLParts, early: [UInt8]) {
        let length: Int
        switch RequestBody.framing(request, cap: .max) {
        case .success(.none): length = 0
        case .success(.length(let n)): length = n
        case .success(.chunked):
            return refuse(client, target: request.target, .badRequest, "a plain-HTTP body needs a Content-Length",
                          status: "411 Length Required")
        case .failure(.bad(let why)): return refuse(client, target: request.target, .badRequest, why)
        case .failure: return refuse(client, target: request.target, .badRequest, "invalid Content-Length")
        }
        guard let addresses = admit(client, host: url.host, port: url.port, tunnel: false) else { return }
        guard let upstream = try? SocketIO.connectTCP(addresses, port: url.port) else {
            try? writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8))
            return
        }
        defer { close(upstream) }
        var tv = timeval(tv_sec: idleSeconds, tv_usec: 0)
        setsockopt(upstream, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // Origin form, no proxy or hop-by-hop headers, and the destination's Host, never the agent's:
        // a shared front end (a CDN) routes by it, and only this destination was allowed.
        var head = "\(request.method) \(url.path) \(request.version)\r\nHost: \(Self.hostHeader(url))\r\n"
        for (name, value) in request.headers where !["host", "expect"].contains(name.lowercased())
            && !HTTPHead.hopByHop.contains(name.lowercased()) {
            head += "\(name): \(value)\r\n"
        }
        head += "Connection: close\r\n\r\n"
        if length > 0, request.value("expect")?.lowercased() == "100-continue" {
            try? writeAll(client, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
        }
        guard (try? writeAll(upstream, Array(head.utf8) + early.prefix(length))) != nil,
              Self.copy(client, to: upstream, count: length - min(length, early.count),
                        deadline: .now + RequestBody.timeLimit) else { return }
        relayAnswer(upstream, to: client)
    }

    /// Copies exactly `count` bytes from `from` to `to` (false when either side fails or the deadline passes).
    static func copy(_ from: Int32, to: Int32, count: Int, deadline: ContinuousClock.Instant) -> Bool {
        var left = count
        var buf = [UInt8](repeating: 0, count: min(65536, max(count, 1)))
        while left > 0 {
            if ContinuousClock.now > deadline { return false }
            let n = buf.withUnsafeMutableBytes { read(from, $0.baseAddress!, min($0.count, left)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            guard (try? writeAll(to, buf[0..<n])) != nil else { return false }
            left -= n
        }
        return true
    }

    /// The destination's answer: its final head with `Connection: close` in
    /// place of its own connection headers (an interim 1xx head as it is),
    /// then its bytes until it closes, or until it is silent for `idleSeconds`.
    func relayAnswer(_ upstream: Int32, to client: Int32) {
        var rest: [UInt8] = []
        while true {
            guard let (head, after) = SocketIO.readHead(upstream, limit: 65536) else {
                try? writeAll(client, Array("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".utf8))
                return
            }
            var lines = head.components(separatedBy: "\r\n")
            let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
            if (100...199).contains(status) {
                guard (try? writeAll(client, Array((head + "\r\n\r\n").utf8))) != nil else { return }
                // Bytes past an interim head start the next one: read them first.
                if !after.isEmpty { return relayRaw(after, upstream, to: client) }
                continue
            }
            lines = [lines[0]] + lines.dropFirst().filter { line in
                let name = line.prefix { $0 != ":" }.lowercased()
                return !["connection", "keep-alive", "proxy-connection"].contains(name)
            }
            guard (try? writeAll(client, Array((lines.joined(separator: "\r\n") + "\r\nConnection: close\r\n\r\n").utf8))) != nil
            else { return }
            rest = after
            break
        }
        relayRaw(rest, upstream, to: client)
    }

    /// Writes `first`, then copies `upstream` to `client` until it ends or is silent for `idleSeconds`.
    private func relayRaw(_ first: [UInt8], _ upstream: Int32, to client: Int32) {
        guard (try? writeAll(client, first)) != nil else { return }
        var buf = [UInt8](repeating: 0, count: 32768)
        while true {
            // SO_RCVTIMEO (idleSeconds) ends a silent upstream's read.
            let n = read(upstream, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            guard (try? writeAll(client, buf[0..<n])) != nil else { return }
        }
    }
}
