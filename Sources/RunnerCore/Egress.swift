/// JOB_NETWORK: how a job child and its agent reach the network.
public enum JobNetwork: String, Sendable, Codable, CaseIterable {
    /// Their own network namespace; the only way out is the job's egress proxy (the default).
    case proxy
    /// Their own network namespace with nothing in it but loopback.
    case none
    /// The host's network, unfiltered: development only, warned about in every job.
    case host
}

/// One egress rule: `host`, `*.domain` or `host:port` (IPv6 as `[addr]:port`).
/// A rule without a port allows the standard port of how it is reached: 443
/// for a `CONNECT` tunnel, 80 for a plain-HTTP request in absolute form (so
/// no rule without a port opens a tunnel to port 80, around the proxy's
/// one-request parsing of plain HTTP). Only a rule with an exact host and
/// port lets a name resolve to a loopback, private or link-local address.
public struct EgressRule: Sendable, Codable, Hashable, CustomStringConvertible {
    /// The host in lower case, or the domain (without `*.`) for a wildcard.
    public var host: String
    /// True for `*.domain`: any name below the domain (not the domain itself).
    public var wildcard: Bool
    /// Nil: 443 for a tunnel, 80 for plain HTTP.
    public var port: Int?
    /// True for a rule derived from a document users write (the git remote):
    /// it allows the name, never a non-public address, even with a port.
    public var nameOnly: Bool

    public init(host: String, wildcard: Bool = false, port: Int? = nil, nameOnly: Bool = false) {
        self.host = host.lowercased()
        self.wildcard = wildcard
        self.port = port
        self.nameOnly = nameOnly
    }

    /// Parses one JOB_EGRESS_ALLOW entry; nil when it is malformed.
    public init?(_ text: String) {
        var t = Substring(text.lowercased())
        var port: Int?
        var host: Substring
        if t.hasPrefix("[") {
            guard let close = t.firstIndex(of: "]") else { return nil }
            host = t[t.index(after: t.startIndex)..<close]
            let rest = t[t.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            }
        } else {
            if let colon = t.lastIndex(of: ":") {
                guard let p = Int(t[t.index(after: colon)...]), (1...65535).contains(p) else { return nil }
                port = p
                t = t[..<colon]
            }
            host = t
        }
        var wildcard = false
        if host.hasPrefix("*.") { wildcard = true; host = host.dropFirst(2) }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-:")
        guard !host.isEmpty, host.count <= 253, host.allSatisfy(allowed.contains), !host.hasPrefix("."),
              !host.hasSuffix("."), !host.contains("..") else { return nil }
        self.init(host: String(host), wildcard: wildcard, port: port)
    }

    /// Whether this rule allows `host:port` by name, for a `CONNECT` tunnel
    /// (`tunnel`) or a plain-HTTP request.
    public func matches(host other: String, port p: Int, tunnel: Bool) -> Bool {
        let h = other.lowercased()
        let nameMatches = wildcard ? h.hasSuffix("." + host) : h == host
        return nameMatches && p == (port ?? (tunnel ? 443 : 80))
    }

    /// True for an exact `host:port` rule from the configuration, which may
    /// reach a non-public address.
    public var isExact: Bool { !wildcard && port != nil && !nameOnly }

    /// The one rule derived for a job: its git remote's host, from the
    /// project document, which users control: by name only, so it can never
    /// open a loopback or private address. The model providers get no rule:
    /// the proxy itself calls them (its `/provider/…` and `/gemini/…` routes,
    /// over libcurl, outside the CONNECT policy), so the agent never needs to
    /// reach them directly, and must not with a key of its own.
    public static func derived(gitRemote: String?) -> [EgressRule] {
        guard let gitRemote, let p = URLParts(gitRemote) else { return [] }
        return [EgressRule(host: p.host, port: p.port, nameOnly: true)]
    }

    public var description: String {
        let h = (wildcard ? "*." : "") + (host.contains(":") ? "[\(host)]" : host)
        return port.map { "\(h):\($0)" } ?? h
    }
}
