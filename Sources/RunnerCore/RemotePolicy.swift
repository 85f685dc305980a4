#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The operator's rules for repository URLs (GIT_ALLOWED_SCHEMES,
/// GIT_LOCAL_REMOTE_ROOTS), applied by the supervisor before anything of a
/// job is made: no workspace, proxy or child for a URL it refuses.
public struct RemotePolicy: Sendable {
    /// The network schemes allowed: a subset of `https`, `http`, `ssh`.
    public var allowedSchemes: [String]
    /// Absolute directories below which (never at which) a local remote may lie.
    public var localRoots: [String]
    /// WORKDIR_ROOT: no local remote may lie in, or hold, the jobs' workspaces.
    public var workdirRoot: String

    /// The values GIT_ALLOWED_SCHEMES may list.
    public static let knownSchemes = ["https", "http", "ssh"]

    public init(allowedSchemes: [String], localRoots: [String], workdirRoot: String) {
        self.allowedSchemes = allowedSchemes
        self.localRoots = localRoots
        self.workdirRoot = workdirRoot
    }

    /// Reads GIT_ALLOWED_SCHEMES and GIT_LOCAL_REMOTE_ROOTS.
    init(_ r: ConfigReader, workdirRoot: String) throws {
        let schemes = r.string("GIT_ALLOWED_SCHEMES").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        for s in schemes where !Self.knownSchemes.contains(s) {
            throw ConfigurationError("GIT_ALLOWED_SCHEMES", s == "file"
                ? "file is not a scheme here: local remotes are allowed below GIT_LOCAL_REMOTE_ROOTS"
                : "'\(s)' is not one of https, http, ssh")
        }
        let roots = r.string("GIT_LOCAL_REMOTE_ROOTS").split(separator: ":").map(String.init)
        for root in roots {
            let parts = root.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard root.hasPrefix("/"), !parts.contains(".."), !parts.contains(".") else {
                throw ConfigurationError("GIT_LOCAL_REMOTE_ROOTS", "'\(root)' is not an absolute path without . or ..")
            }
            guard parts.contains(where: { !$0.isEmpty }) else {
                throw ConfigurationError("GIT_LOCAL_REMOTE_ROOTS", "/ would make every host directory a remote")
            }
        }
        self.init(allowedSchemes: schemes.isEmpty ? ["https"] : schemes, localRoots: roots, workdirRoot: workdirRoot)
    }

    /// `url` parsed and checked against the rules; throws `invalid_remote`
    /// naming the rule. A local remote's path is resolved (symlinks
    /// followed) and must lie strictly below a root, outside WORKDIR_ROOT.
    /// Reads the file system (realpath, stat): call it off the cooperative pool.
    public func check(_ url: String) throws -> RepositoryRemote {
        let remote = try RepositoryRemote(url)
        if let scheme = remote.scheme {
            guard allowedSchemes.contains(scheme) else {
                throw RepositoryRemote.refuse("\(scheme) remotes are not allowed (GIT_ALLOWED_SCHEMES=\(allowedSchemes.joined(separator: ","))"
                    + (scheme == "http" ? "; use https" : scheme == "ssh" ? "; use the https:// form" : "") + ")")
            }
            return remote
        }
        guard let path = remote.localPath else { return remote }
        guard !localRoots.isEmpty else {
            throw RepositoryRemote.refuse("local remotes are not allowed (GIT_LOCAL_REMOTE_ROOTS lists no root)")
        }
        guard let resolved = Self.realPath(path) else {
            throw RepositoryRemote.refuse("the local path does not exist or cannot be resolved")
        }
        var st = stat()
        guard stat(resolved, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw RepositoryRemote.refuse("the local path is not a directory")
        }
        let roots = localRoots.compactMap(Self.realPath)
        if roots.contains(resolved) {
            throw RepositoryRemote.refuse("the local path is a GIT_LOCAL_REMOTE_ROOTS root itself; only folders below one are remotes")
        }
        guard roots.contains(where: { resolved.hasPrefix($0 == "/" ? "/" : $0 + "/") }) else {
            throw RepositoryRemote.refuse("the local path (symlinks resolved) is not below a GIT_LOCAL_REMOTE_ROOTS root")
        }
        let work = Self.realPath(workdirRoot) ?? workdirRoot
        if Self.isAtOrBelow(resolved, work) || Self.isAtOrBelow(work, resolved) {
            throw RepositoryRemote.refuse("the local path is in, or holds, the runner's job workspaces (WORKDIR_ROOT)")
        }
        return remote
    }

    static func isAtOrBelow(_ path: String, _ dir: String) -> Bool {
        path == dir || path.hasPrefix(dir == "/" ? "/" : dir + "/")
    }

    /// realpath(3): the absolute path with every symlink resolved; nil when it does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// The line `doctor` reports.
    public var summary: String {
        "repository URLs: GIT_ALLOWED_SCHEMES=\(allowedSchemes.joined(separator: ",")); local remotes "
            + (localRoots.isEmpty ? "off (GIT_LOCAL_REMOTE_ROOTS lists no root)"
                : "below \(localRoots.joined(separator: ":")) (GIT_LOCAL_REMOTE_ROOTS)")
    }
}

/// One GIT_TOKEN_HOSTS entry, `host[:port]`: a push token is offered to an
/// http(s) remote on this host only (without a port: the scheme's own, 443
/// or 80).
public struct TokenHost: Sendable, Codable, Hashable, CustomStringConvertible {
    /// Lower case; an IPv6 address without its brackets.
    public var host: String
    public var port: Int?

    public init(host: String, port: Int? = nil) {
        self.host = host.lowercased()
        self.port = port
    }

    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; nil when malformed.
    public init?(_ text: String) {
        var host = Substring(text.lowercased())
        var port: Int?
        if let colon = host.lastIndex(of: ":"), !host.hasPrefix("[") || host[..<colon].hasSuffix("]") {
            let digits = host[host.index(after: colon)...]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = Int(digits), (1...65535).contains(p) else { return nil }
            port = p
            host = host[..<colon]
        }
        guard HostName.isValid(String(host)) else { return nil }
        self.init(host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : String(host), port: port)
    }

    /// Whether a remote at `url` is on this host (and port).
    public func matches(_ url: URLParts) -> Bool {
        url.host == host && url.port == (port ?? (url.scheme == "https" ? 443 : 80))
    }

    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return port.map { "\(h):\($0)" } ?? h
    }

    /// Parses GIT_TOKEN_HOSTS (comma-separated; empty: github.com).
    public static func parseList(_ text: String) throws -> [TokenHost] {
        let entries = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return try (entries.isEmpty ? ["github.com"] : entries).map { entry in
            guard let h = TokenHost(entry) else {
                throw ConfigurationError("GIT_TOKEN_HOSTS", "'\(entry)' is not host or host:port")
            }
            return h
        }
    }
}

extension Array where Element == TokenHost {
    /// Whether a push token may be offered to `remote`: an http(s) remote on one of these hosts.
    public func allow(_ remote: RepositoryRemote?) -> Bool {
        guard let url = remote?.http else { return false }
        return contains { $0.matches(url) }
    }

    /// Why no token goes to `remote` (nil: one may).
    public func refusal(_ remote: RepositoryRemote?) -> String? {
        guard let url = remote?.http, !allow(remote) else { return nil }
        let at = (url.host.contains(":") ? "[\(url.host)]" : url.host) + ":\(url.port)"
        return "the remote's host \(at) is not in GIT_TOKEN_HOSTS (\(map(\.description).joined(separator: ","))): "
            + "no push token is sent there"
    }
}
