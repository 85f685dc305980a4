#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation

/// Stream Unix sockets, shared by the egress proxy, the job child's
/// forwarder and the supervisor's own calls to a proxy (`doctor --online`).
/// Blocking: call them on a thread of their own, never on Swift's pool.
public enum UnixSocket {
    /// A listening Unix socket at `path` (replacing a stale file), mode `mode`.
    public static func listen(_ path: String, mode: mode_t = 0o600) throws -> Int32 {
        let fd = try retryingEINTR("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        unlink(path)
        // errno is taken right after bind: withShortPath's close may follow it.
        let failed: Int32
        do {
            failed = try withShortPath(path) { short -> Int32 in
                var addr = try address(short)
                return withUnsafePointer(to: &addr) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 ? 0 : errno
                    }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        guard failed == 0 else { close(fd); throw Errno(failed, "bind \(path)") }
        chmod(path, mode)
        guard Glibc.listen(fd, 64) == 0 else { let e = errno; close(fd); throw Errno(e, "listen \(path)") }
        return fd
    }

    /// A connection to the Unix socket at `path` (a signal does not fail it: `connectRetryingEINTR`).
    public static func connect(_ path: String) throws -> Int32 {
        let fd = try retryingEINTR("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            try withShortPath(path) { short in
                var addr = try address(short)
                try withUnsafePointer(to: &addr) {
                    try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        try connectRetryingEINTR(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size), "connect \(path)")
                    }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Runs `body` with a name for `path` that fits sockaddr_un (108 bytes):
    /// the path itself, or /proc/self/fd/N/<name> through an O_PATH
    /// descriptor of its directory (workspaces can be deep).
    public static func withShortPath<T>(_ path: String, _ body: (String) throws -> T) throws -> T {
        guard path.utf8.count >= 100 else { return try body(path) }
        let dir = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
        let fd = try retryingEINTR("open \(dir)") { open(dir, cshims_o_path() | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        return try body("/proc/self/fd/\(fd)/\(name)")
    }

    /// The address of `path`; ENAMETOOLONG when it does not fit.
    public static func address(_ path: String) throws -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw Errno(ENAMETOOLONG, "socket path \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return addr
    }
}
