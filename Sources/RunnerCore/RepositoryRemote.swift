#if canImport(Glibc)
import Glibc
#endif

/// A project's repository URL (a field web users write), parsed and
/// classified once by its syntax. Every process decides "is this an http
/// remote, a local one, ssh" from this one type; `RemotePolicy` adds the
/// operator's rules (schemes, local roots) on top. A URL this type refuses
/// fails the job `invalid_remote`, naming the rule.
public struct RepositoryRemote: Sendable, Equatable {
    /// What the URL names.
    public enum Kind: Sendable, Equatable {
        /// `https://host[:port]/path` or `http://…`: pushed with a token, through the egress proxy.
        case http(URLParts)
        /// `ssh://[user@]host[:port]/path` (also `git+ssh://`, `ssh+git://`) or
        /// scp-like `[user@]host:path`. Accepted when GIT_ALLOWED_SCHEMES lists
        /// `ssh`; the publisher has no ssh transport, so such a job ends with
        /// its push skipped.
        case ssh(host: String, port: Int?)
        /// `file:///absolute/path` or `/absolute/path`: accepted only below a
        /// GIT_LOCAL_REMOTE_ROOTS root (`RemotePolicy`).
        case local(path: String)
    }

    /// The URL as written.
    public let url: String
    public let kind: Kind

    /// The scheme as GIT_ALLOWED_SCHEMES names it (`https`, `http`, `ssh`), nil for a local remote.
    public var scheme: String? {
        switch kind {
        case .http(let p): p.scheme
        case .ssh: "ssh"
        case .local: nil
        }
    }

    /// The http(s) URL's parts, nil for any other kind.
    public var http: URLParts? {
        if case .http(let p) = kind { return p }
        return nil
    }

    /// The local path, nil for any other kind.
    public var localPath: String? {
        if case .local(let path) = kind { return path }
        return nil
    }

    /// Longest URL accepted.
    public static let maxLength = 2048

    /// Parses `url`; throws `invalid_remote` naming the rule it breaks.
    public init(_ url: String) throws {
        self.url = url
        kind = try Self.classify(url)
    }

    static func refuse(_ rule: String) -> JobFailure {
        JobFailure(.invalidRemote, "the project's repository URL is refused: " + rule)
    }

    static func classify(_ url: String) throws -> Kind {
        guard url.utf8.count <= maxLength else { throw refuse("longer than \(maxLength) bytes") }
        guard url.unicodeScalars.allSatisfy(\.isASCII) else {
            throw refuse("it must be ASCII (an internationalised host in its xn-- form)")
        }
        guard !url.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F }) else {
            throw refuse("it contains whitespace or control characters")
        }
        guard !url.contains("\\") else { throw refuse("it contains a backslash") }
        if let sep = url.range(of: "://") {
            let scheme = url[..<sep.lowerBound].lowercased()
            let rest = String(url[sep.upperBound...])
            switch scheme {
            case "https", "http":
                let (user, host, _, path) = try authorityAndPath(rest)
                guard user == nil else { throw refuse("credentials or a user name in the URL (user@host) are not allowed") }
                try checkRemotePath(path)
                guard let parts = URLParts(url), parts.host == host else { throw refuse("its host cannot be read") }
                return .http(parts)
            case "ssh", "git+ssh", "ssh+git":
                let (user, host, port, path) = try authorityAndPath(rest)
                try checkUser(user)
                try checkRemotePath(path)
                return .ssh(host: host, port: port)
            case "file":
                guard rest.hasPrefix("/") else {
                    throw refuse("a file:// URL must name an absolute local path (file:///path), not a host")
                }
                return .local(path: try checkedLocalPath(rest))
            default:
                throw refuse("the scheme \(scheme.prefix(16)):// is not supported (https, http, ssh, file, or an absolute path)")
            }
        }
        if url.hasPrefix("/") { return .local(path: try checkedLocalPath(url)) }
        // scp-like `[user@]host:path`: libgit2 reads any other `x:y` this way.
        if let colon = url.firstIndex(of: ":"), !url[..<colon].contains("/") {
            var authority = url[..<colon]
            var user: String?
            if let at = authority.lastIndex(of: "@") {
                user = String(authority[..<at])
                authority = authority[authority.index(after: at)...]
            }
            try checkUser(user)
            guard HostName.isValid(String(authority)) else { throw refuse("its host is not a DNS name or an IPv4 address") }
            let path = String(url[url.index(after: colon)...])
            try checkRemotePath(path.hasPrefix("/") ? path : "/" + path)
            return .ssh(host: String(authority).lowercased(), port: nil)
        }
        throw refuse("a relative path or an unknown form (a local remote is an absolute path below GIT_LOCAL_REMOTE_ROOTS)")
    }

    /// `[user@]host[:port]` and the path of what follows `scheme://`.
    static func authorityAndPath(_ rest: String) throws -> (user: String?, host: String, port: Int?, path: String) {
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<end]
        let path = String(rest[end...])
        var user: String?
        if let at = authority.lastIndex(of: "@") {
            user = String(authority[..<at])
            authority = authority[authority.index(after: at)...]
        }
        var host = authority
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw refuse("its IPv6 host has no closing ]") }
            host = authority[...close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw refuse("its host is followed by something other than a port")
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        }
        guard HostName.isValid(String(host)) else {
            throw refuse("its host is not a DNS name, an IPv4 address or a bracketed IPv6 address")
        }
        var port: Int?
        if let portText {
            guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber), portText.count <= 5,
                  let n = Int(portText), (1...65535).contains(n) else { throw refuse("its port is not a number in 1-65535") }
            port = n
        }
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : String(host)
        return (user, bare.lowercased(), port, path)
    }

    /// An ssh user name (no password: `user:secret@` is a credential).
    static func checkUser(_ user: String?) throws {
        guard let user else { return }
        guard !user.isEmpty, user.count <= 64, !user.contains(":"),
              user.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw refuse("credentials in the URL are not allowed (an ssh user name is letters, digits, '.', '_' or '-')")
        }
    }

    /// The path of a network remote: `/segment/…`, no query or fragment, no
    /// percent-escapes, no `.`/`..` or empty segments.
    static func checkRemotePath(_ path: String) throws {
        guard path.count > 1, path.hasPrefix("/") else { throw refuse("it names no repository path") }
        guard !path.contains("?"), !path.contains("#") else { throw refuse("a query (?) or fragment (#) is not allowed") }
        guard !path.contains("%") else { throw refuse("percent-escapes (%) are not allowed in the path") }
        var segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        if segments.last == "" { segments.removeLast() }
        guard segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw refuse("the path has an empty, '.' or '..' segment")
        }
    }

    /// An absolute local path, by syntax: no `.`/`..` or empty segments, none
    /// of `%` (libgit2 unescapes file:// URLs), `:` (read as scp-like ssh when
    /// the path is missing), `?` or `#`.
    static func checkedLocalPath(_ path: String) throws -> String {
        guard path.hasPrefix("/") else { throw refuse("a local remote must be an absolute path") }
        guard !path.contains(where: { "%:?#".contains($0) }) else {
            throw refuse("a local path must not contain %, :, ? or #")
        }
        var segments = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        if segments.last == "" { segments.removeLast() }
        guard !segments.isEmpty else { throw refuse("the local path is /") }
        guard segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw refuse("the local path has an empty, '.' or '..' segment")
        }
        return "/" + segments.joined(separator: "/")
    }
}

/// Host names as the runner accepts them from documents and configuration.
public enum HostName {
    /// A DNS name whose last label starts with a letter (which leaves out every
    /// numeric form `inet_aton` reads: `127.1`, `0x7f000001`, `2130706433`), a
    /// dotted-quad IPv4 address in canonical form, or a bracketed IPv6 address.
    public static func isValid(_ host: String) -> Bool {
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return false }
            var addr = in6_addr()
            return inet_pton(AF_INET6, String(host.dropFirst().dropLast()), &addr) == 1
        }
        guard !host.isEmpty, host.count <= 253 else { return false }
        let labels = host.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        if labels.count == 4, labels.allSatisfy({ l in
            !l.isEmpty && l.count <= 3 && l.allSatisfy { $0.isASCII && $0.isNumber } && (l == "0" || !l.hasPrefix("0"))
                && Int(l)! <= 255
        }) { return true }
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789-")
        guard labels.allSatisfy({ l in
            !l.isEmpty && l.count <= 63 && l.allSatisfy(allowed.contains) && !l.hasPrefix("-") && !l.hasSuffix("-")
        }) else { return false }
        return labels.last!.first!.isLetter
    }
}
