#if canImport(Glibc)
import Glibc
#endif
import RunnerCore

/// Why the proxy refused a destination (the label of the refusal counter).
public enum DenyReason: String, Sendable, Codable, CaseIterable {
    /// No rule of JOB_EGRESS_ALLOW nor the git remote's names it.
    case notAllowed = "not_allowed"
    /// It resolves only to loopback, private, link-local, multicast or
    /// unspecified addresses, and no exact host:port rule names it.
    case nonPublicAddress = "non_public_address"
    /// The name does not resolve.
    case unresolvable
    /// The request is not one the proxy serves.
    case badRequest = "bad_request"
    /// A keyed route's request that is not a model call, a model listing or
    /// a token count (`RouteAllowlist`).
    case notAModelCall = "not_a_model_call"
    /// A model call under a dollar budget for a model the price table does
    /// not list: its cost could not be counted (`MODEL_PRICES_FILE` adds it).
    case unpricedModel = "unpriced_model"
}

/// The egress decision: by name first (the rules), then by the resolved
/// addresses, which are checked once and are the only ones connected to (no
/// second lookup, so DNS rebinding cannot swap them).
public struct EgressPolicy: Sendable {
    public let rules: [EgressRule]

    public init(rules: [EgressRule]) { self.rules = rules }

    /// The outcome for one destination.
    public enum Decision: Sendable, Equatable {
        case allow([IPAddress])
        case deny(DenyReason, String)
    }

    /// Decides by name alone: the matching rule (an exact one first), or nil.
    public func rule(host: String, port: Int, tunnel: Bool) -> EgressRule? {
        let h = Self.normalized(host)
        let matching = rules.filter { $0.matches(host: h, port: port, tunnel: tunnel) }
        return matching.first(where: \.isExact) ?? matching.first
    }

    /// The full decision for a `CONNECT` tunnel (`tunnel`) or a plain-HTTP
    /// request, resolving `host` with `resolve` (getaddrinfo by default).
    /// `hostAddresses` are this machine's own (its interfaces'): they count
    /// as non-public, so a service of the runner's host that listens on
    /// 0.0.0.0 is not reached through a rule whose name resolves to the
    /// host's public address.
    public func decide(host: String, port: Int, tunnel: Bool,
                       resolve: (String, Int) -> [IPAddress] = IPAddress.resolve,
                       hostAddresses: @autoclosure () -> [IPAddress] = HostAddresses.current()) -> Decision {
        let h = Self.normalized(host)
        guard (1...65535).contains(port), !h.isEmpty else { return .deny(.badRequest, "bad destination") }
        guard let rule = rule(host: h, port: port, tunnel: tunnel) else {
            return .deny(.notAllowed, "not in JOB_EGRESS_ALLOW")
        }
        let addresses = IPAddress(literal: h).map { [$0] } ?? resolve(h, port)
        guard !addresses.isEmpty else { return .deny(.unresolvable, "does not resolve") }
        if rule.isExact && rule.host == h { return .allow(addresses) }
        guard let public0 = addresses.first(where: \.isPublic) else {
            return .deny(.nonPublicAddress, "resolves to \(addresses[0]), a \(addresses[0].kind) address")
        }
        let own = hostAddresses().map(\.unmapped)
        let usable = addresses.filter { $0.isPublic && !own.contains($0.unmapped) }
        guard !usable.isEmpty else {
            return .deny(.nonPublicAddress, "resolves to \(public0), an address of this host")
        }
        return .allow(usable)
    }

    /// Lower case, without IPv6 brackets or a trailing dot.
    static func normalized(_ host: String) -> String {
        var h = host.lowercased()
        if h.hasPrefix("["), h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        if h.hasSuffix(".") { h.removeLast() }
        return h
    }
}

/// An IPv4 or IPv6 address with the classification the policy needs.
public struct IPAddress: Sendable, Equatable, CustomStringConvertible {
    /// 4 or 16 bytes, network order.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Parses a literal ("10.0.0.1", "::1"); nil for a name.
    public init?(literal: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public var isV4: Bool { bytes.count == 4 }

    /// The IPv4 address inside an IPv4-mapped one, else this address.
    var unmapped: IPAddress {
        guard !isV4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff else { return self }
        return IPAddress(bytes: Array(bytes[12...])) ?? self
    }

    /// The IPv4 address inside an IPv4-mapped or -compatible IPv6 one.
    var embeddedV4: IPAddress? {
        guard !isV4, bytes[0..<10].allSatisfy({ $0 == 0 }) else { return nil }
        let tail = Array(bytes[12...])
        if bytes[10] == 0xff && bytes[11] == 0xff { return IPAddress(bytes: tail) }
        let isZeroOrOne = tail[0..<3].allSatisfy { $0 == 0 } && tail[3] <= 1 // :: and ::1 are IPv6's own
        if bytes[10] == 0 && bytes[11] == 0 && !isZeroOrOne { return IPAddress(bytes: tail) }
        return nil
    }

    /// "loopback", "private", "link-local", "multicast", "unspecified", "reserved" or "public".
    public var kind: String {
        if let v4 = embeddedV4 { return v4.kind }
        let b = bytes
        if isV4 {
            switch (b[0], b[1]) {
            case (0, _): return "unspecified"
            case (127, _): return "loopback"
            case (10, _), (172, 16...31), (192, 168): return "private"
            case (100, 64...127): return "private" // carrier-grade NAT (RFC 6598)
            case (169, 254): return "link-local"
            case (224...239, _): return "multicast"
            case (240...255, _): return "reserved"
            case (192, 0) where b[2] == 0: return "reserved"
            case (198, 18...19): return "reserved"
            default: return "public"
            }
        }
        if b.allSatisfy({ $0 == 0 }) { return "unspecified" }
        if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return "loopback" }
        if b[0] & 0xfe == 0xfc { return "private" }            // fc00::/7 unique local
        if b[0] == 0xfe && b[1] & 0xc0 == 0x80 { return "link-local" } // fe80::/10
        if b[0] == 0xfe && b[1] & 0xc0 == 0xc0 { return "private" }    // fec0::/10 site-local
        if b[0] == 0xff { return "multicast" }
        if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8 { return "reserved" } // documentation
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b { return "reserved" } // NAT64
        return "public"
    }

    /// Whether the proxy may connect here without an exact host:port rule.
    public var isPublic: Bool { kind == "public" }

    public var description: String {
        var buf = [CChar](repeating: 0, count: 64)
        var copy = bytes
        _ = inet_ntop(isV4 ? AF_INET : AF_INET6, &copy, &buf, socklen_t(buf.count))
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// getaddrinfo for TCP (blocking; call it on the connection's own thread).
    public static func resolve(_ host: String, _ port: Int) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var out: [IPAddress] = []
        var p = list
        while let ai = p {
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                if let ip = IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) }), !out.contains(ip) { out.append(ip) }
            } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                if let ip = IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) }), !out.contains(ip) { out.append(ip) }
            }
            p = ai.pointee.ai_next
        }
        return out
    }
}
