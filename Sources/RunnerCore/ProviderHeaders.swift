/// One request header the egress proxy adds to every request of the Cline
/// provider route, from the operator's CLINE_PROVIDER_HEADERS: the
/// organisation, project and beta headers (`OpenAI-Organization`,
/// `OpenAI-Project`, `anthropic-beta`, OpenRouter's `HTTP-Referer`…), which
/// the agent may not choose. The values may be secret: they travel only in
/// the proxy's ticket on its stdin, like the key, and are never logged.
public struct ProviderHeader: Sendable, Codable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Names the operator may not set: the key's headers (the proxy adds the
    /// key itself), the framing and hop-by-hop headers, and the Gemini route's token.
    public static let refusedNames: Set<String> = ClineProvider.credentialHeaders.union([
        "host", "content-length", "transfer-encoding", "expect", "connection", "keep-alive", "proxy-connection",
        "te", "trailer", "upgrade", "proxy-authenticate", "x-agent-runner-route",
    ])

    /// Parses CLINE_PROVIDER_HEADERS: `Name: value` entries separated by `;`
    /// or newlines (so a value cannot hold a `;`); blank entries are
    /// skipped. A name is an HTTP token, not one of `refusedNames`, and not
    /// repeated; a value is non-empty, printable, without control characters.
    /// The error never quotes a value (it may be a secret).
    public static func parse(_ text: String) throws -> [ProviderHeader] {
        let name = "CLINE_PROVIDER_HEADERS"
        var out: [ProviderHeader] = []
        for (n, raw) in text.split(whereSeparator: { $0 == ";" || $0 == "\n" || $0 == "\r\n" }).enumerated() {
            let entry = String(raw).trimmedOWS
            if entry.isEmpty { continue }
            guard let colon = entry.firstIndex(of: ":") else {
                throw ConfigurationError(name, "entry \(n + 1) is not `Name: value`")
            }
            let key = String(entry[..<colon]), value = String(entry[entry.index(after: colon)...]).trimmedOWS
            guard !key.isEmpty, key.unicodeScalars.allSatisfy(isTokenChar) else {
                throw ConfigurationError(name, "entry \(n + 1): '\(key.prefix(64))' is not a header name")
            }
            guard !refusedNames.contains(key.lowercased()) else {
                throw ConfigurationError(name, "\(key) may not be set here (the proxy sets the key and the framing itself)")
            }
            guard !out.contains(where: { $0.name.lowercased() == key.lowercased() }) else {
                throw ConfigurationError(name, "\(key) is given twice")
            }
            guard !value.isEmpty, value.utf8.count <= 4096,
                  value.unicodeScalars.allSatisfy({ $0 == "\t" || ($0.value >= 0x20 && $0.value != 0x7f) }) else {
                throw ConfigurationError(name, "the value of \(key) is empty, over 4096 bytes or has a control character")
            }
            out.append(ProviderHeader(name: key, value: value))
        }
        guard out.count <= 32 else { throw ConfigurationError(name, "more than 32 headers") }
        return out
    }

    /// tchar (RFC 9110 §5.6.2).
    static func isTokenChar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9": return true
        default: return "!#$%&'*+-.^_`|~".unicodeScalars.contains(c)
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs.
    fileprivate var trimmedOWS: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
