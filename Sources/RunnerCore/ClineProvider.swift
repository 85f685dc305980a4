/// The model provider that the Cline agent calls (CLINE_PROVIDER), and how
/// the egress proxy reaches it on the agent's behalf. The agent is configured
/// with a base URL on the proxy and a placeholder key; the proxy removes any
/// credential the agent sends and adds the real key (CLINE_API_KEY) in the
/// header this provider expects, then forwards to `upstreamBaseURL`.
public struct ClineProvider: Sendable, Codable, Equatable {
    /// The API dialect Cline speaks to the provider.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case anthropic, openai, openrouter, gemini
        /// Any OpenAI-compatible endpoint, given as its base URL.
        case openaiCompatible = "openai-compatible"
    }

    public var kind: Kind
    /// Where the proxy forwards the agent's provider requests, without a trailing slash.
    public var upstreamBaseURL: String

    /// The key the agent holds in place of the real one. Worthless: the proxy
    /// drops it and injects CLINE_API_KEY.
    public static let placeholderKey = "agent-runner-placeholder-key"

    public init(kind: Kind, upstreamBaseURL: String) {
        self.kind = kind
        self.upstreamBaseURL = upstreamBaseURL.hasSuffix("/") ? String(upstreamBaseURL.dropLast()) : upstreamBaseURL
    }

    /// Parses CLINE_PROVIDER: a provider name, or an http(s) base URL of an
    /// OpenAI-compatible endpoint.
    public static func parse(_ text: String) throws -> ClineProvider {
        switch text {
        case "anthropic": return ClineProvider(kind: .anthropic, upstreamBaseURL: "https://api.anthropic.com")
        case "openai": return ClineProvider(kind: .openai, upstreamBaseURL: "https://api.openai.com/v1")
        case "openrouter": return ClineProvider(kind: .openrouter, upstreamBaseURL: "https://openrouter.ai/api/v1")
        case "gemini": return ClineProvider(kind: .gemini, upstreamBaseURL: "https://generativelanguage.googleapis.com")
        default:
            guard text.hasPrefix("https://") || text.hasPrefix("http://"), URLParts(text) != nil else {
                throw ConfigurationError("CLINE_PROVIDER", "'\(text)' is not anthropic, openai, openrouter, gemini "
                    + "or the http(s) base URL of an OpenAI-compatible endpoint")
            }
            return ClineProvider(kind: .openaiCompatible, upstreamBaseURL: text)
        }
    }

    /// The credential headers the proxy adds for `key` (names in lower case).
    public func authHeaders(key: String) -> [(name: String, value: String)] {
        switch kind {
        case .anthropic: return [("x-api-key", key)]
        case .gemini: return [("x-goog-api-key", key)]
        case .openai, .openrouter, .openaiCompatible: return [("authorization", "Bearer " + key)]
        }
    }

    /// Every header through which an agent could send (or try to override) a
    /// credential; the proxy strips them all before adding its own.
    public static let credentialHeaders: Set<String> = ["authorization", "x-api-key", "x-goog-api-key",
                                                         "api-key", "proxy-authorization"]
}

/// The scheme, host and port of an http(s) URL (enough for egress rules).
public struct URLParts: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int
    /// The path and query, starting with "/" ("/" when empty).
    public var path: String

    /// Nil when `url` is not an absolute http(s) URL with a host.
    public init?(_ url: String) {
        guard let sep = url.range(of: "://") else { return nil }
        scheme = url[..<sep.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        var rest = url[sep.upperBound...]
        let pathStart = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<pathStart]
        let p = String(rest[pathStart...])
        path = p.isEmpty ? "/" : (p.hasPrefix("/") ? p : "/" + p)
        rest = ""
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close]).lowercased()
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon]).lowercased()
            portText = authority[authority.index(after: colon)...]
        } else {
            host = String(authority).lowercased()
        }
        guard !host.isEmpty else { return nil }
        if let portText {
            guard let n = Int(portText), (1...65535).contains(n) else { return nil }
            port = n
        } else {
            port = scheme == "https" ? 443 : 80
        }
    }
}
