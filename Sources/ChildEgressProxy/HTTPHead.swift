/// A parsed HTTP/1.x request head, strictly (RFC 9112): the
/// agent that writes it is untrusted, and its headers are forwarded with a
/// provider's key beside them, so nothing that could end a header line early
/// gets through.
public struct HTTPHead: Sendable {
    public var method = "", target = "", version = "HTTP/1.1"
    public var headers: [(String, String)] = []

    /// Headers never forwarded by a proxy.
    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "proxy-authorization",
                                        "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"]

    /// Nil for a head that is not well formed: a bare CR or LF, a NUL or any
    /// other control character (but HTAB in a value), a header name that is
    /// not a token (RFC 9110 §5.6.2, whitespace before the colon included), a
    /// folded line (obs-fold), or a request target with a space or a control
    /// character.
    public init?(_ text: String) {
        let lines = text.components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard first.count >= 2, lines[0].unicodeScalars.allSatisfy({ !Self.isControl($0) }) else { return nil }
        guard first.count == 3, ["HTTP/1.0", "HTTP/1.1"].contains(first[2]), !first[0].isEmpty,
              first[0].allSatisfy({ $0.isASCII && $0.isLetter && $0.isUppercase }), !first[1].isEmpty,
              !first[1].contains(" ")
        else { return nil }
        method = first[0]; target = first[1]; version = first[2]
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon]
            let value = line[line.index(after: colon)...].trimmingOWS
            guard !name.isEmpty, name.unicodeScalars.allSatisfy(Self.isTokenChar),
                  value.unicodeScalars.allSatisfy({ $0 == "\t" || !Self.isControl($0) })
            else { return nil }
            headers.append((String(name), String(value)))
        }
    }

    /// The first value of header `name` (case-insensitive).
    public func value(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// Every value of header `name` (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    /// C0 controls (NUL, CR, LF among them) and DEL.
    static func isControl(_ c: Unicode.Scalar) -> Bool { c.value < 0x20 || c.value == 0x7f }

    /// tchar: "!#$%&'*+-.^_`|~", digits and letters (ASCII).
    static func isTokenChar(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "a"..."z", "A"..."Z", "0"..."9": return true
        default: return "!#$%&'*+-.^_`|~".unicodeScalars.contains(c)
        }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (OWS).
    var trimmingOWS: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }
}
