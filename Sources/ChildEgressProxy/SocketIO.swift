#if canImport(Glibc)
import Glibc
#endif
import Foundation
import CShims
import RunnerCore

/// Blocking socket helpers for the proxy and the job child's forwarder. Each
/// connection has a thread of its own; nothing here runs on Swift's pool.
public enum SocketIO {
    /// A listening Unix socket at `path` (replacing a stale file), mode `mode`.
    public static func listenUnix(_ path: String, mode: mode_t = 0o600) throws -> Int32 {
        try UnixSocket.listen(path, mode: mode)
    }

    /// A connection to the Unix socket at `path`.
    public static func connectUnix(_ path: String) throws -> Int32 { try UnixSocket.connect(path) }

    /// A listening TCP socket on 127.0.0.1:`port` (0: any free port); returns the fd and the port.
    public static func listenLoopback(port: Int) throws -> (fd: Int32, port: Int) {
        let fd = try retryingEINTR("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        // errno is taken right after the call that failed.
        let failed = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                bind(fd, p, len) == 0 && getsockname(fd, p, &len) == 0 && listen(fd, 64) == 0 ? 0 : errno
            }
        }
        guard failed == 0 else { close(fd); throw Errno(failed, "listen on 127.0.0.1:\(port)") }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// A TCP connection to the first of `addresses` that answers, within `timeout` seconds each.
    public static func connectTCP(_ addresses: [IPAddress], port: Int, timeout: Int32 = 10) throws -> Int32 {
        var last = Errno(EHOSTUNREACH, "connect")
        for ip in addresses {
            let family = ip.isV4 ? AF_INET : AF_INET6
            guard let fd = try? retryingEINTR("socket", { socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) })
            else { continue }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            do {
                try withSocketAddress(ip, port: port) {
                    try connectRetryingEINTR(fd, $0, $1, "connect \(ip):\(port)", timeoutMs: timeout * 1000)
                }
                var none = timeval()
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
                return fd
            } catch let error as Errno {
                last = error
                close(fd)
            }
        }
        throw last
    }

    /// Runs `body` with the sockaddr_in or sockaddr_in6 for `ip` and `port`, and its length.
    static func withSocketAddress<T>(_ ip: IPAddress, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) rethrows -> T {
        func call<A>(_ a: inout A) throws -> T {
            try withUnsafePointer(to: &a) { try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<A>.size)) } }
        }
        if ip.isV4 {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = in_port_t(UInt16(port).bigEndian)
            withUnsafeMutableBytes(of: &a.sin_addr) { $0.copyBytes(from: ip.bytes) }
            return try call(&a)
        }
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_port = in_port_t(UInt16(port).bigEndian)
        withUnsafeMutableBytes(of: &a.sin6_addr) { $0.copyBytes(from: ip.bytes) }
        return try call(&a)
    }

    /// The stack of each connection's thread (the default, RLIMIT_STACK's
    /// 8 MiB, would count 512 MiB of 64 threads against the proxy's memory limit).
    public static let threadStackSize = 1 << 20

    /// Accepts connections on `fd` forever, each handled on a thread of its
    /// own (at most `limit` at once; more wait in the backlog).
    public static func serve(_ fd: Int32, limit: Int = 64, _ handle: @escaping @Sendable (Int32) -> Void) {
        let slots = DispatchSemaphore(value: limit)
        while true {
            slots.wait()
            let conn = cshims_accept_cloexec(fd)
            if conn < 0 {
                let e = errno // before slots.signal(), which may change it
                slots.signal()
                if e == EINTR || e == ECONNABORTED || e == EMFILE { if e == EMFILE { usleep(100_000) }; continue }
                return
            }
            let thread = Thread {
                handle(conn)
                close(conn)
                slots.signal()
            }
            thread.stackSize = threadStackSize
            thread.start()
        }
    }

    /// Copies bytes both ways until both directions end (half-closes are
    /// passed on), or, with `idleSeconds`, until no byte has passed either
    /// way for that long.
    public static func relay(_ a: Int32, _ b: Int32, idleSeconds: Int? = nil) {
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var open = [true, true]
        var buf = [UInt8](repeating: 0, count: 32768)
        while open[0] || open[1] {
            for i in 0..<2 { fds[i].events = open[i] ? Int16(POLLIN) : 0 }
            let n = poll(&fds, 2, idleSeconds.map { Int32(clamping: $0 * 1000) } ?? -1)
            if n < 0 { if errno == EINTR { continue }; return }
            if n == 0 { return } // idle
            for i in 0..<2 where open[i] && fds[i].revents != 0 {
                let from = fds[i].fd, to = fds[1 - i].fd
                let got = read(from, &buf, buf.count)
                if got < 0 && errno == EINTR { continue }
                if got <= 0 {
                    open[i] = false
                    shutdown(to, Int32(SHUT_WR))
                    continue
                }
                if (try? writeAll(to, buf[0..<got])) == nil { return }
            }
        }
    }

    /// Reads an HTTP request or response head (up to the blank line, at most
    /// `limit` bytes); returns it and any bytes read past it. With `deadline`,
    /// nil once it passes (checked after each read: a read itself is bounded
    /// by the socket's SO_RCVTIMEO), so a head sent a byte at a time cannot
    /// hold the connection for ever.
    public static func readHead(_ fd: Int32, limit: Int = 32768,
                                deadline: ContinuousClock.Instant? = nil) -> (head: String, rest: [UInt8])? {
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        let marker: [UInt8] = [13, 10, 13, 10]
        while data.count < limit {
            if let deadline, ContinuousClock.now > deadline { return nil }
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            data += buf[0..<n]
            if let end = data.firstRange(of: marker) {
                return (String(decoding: data[..<end.lowerBound], as: UTF8.self), Array(data[end.upperBound...]))
            }
        }
        return nil
    }
}
