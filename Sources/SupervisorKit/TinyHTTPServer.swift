#if canImport(Glibc)
import Glibc
#endif
import CShims
import RunnerCore

/// A minimal HTTP/1.1 responder for the two read-only operator endpoints
/// (`/metrics`, `/healthz`). It runs on a thread of its own (accept and read
/// block), serves one short request at a time with 2-second socket timeouts,
/// and always closes the connection.
///
/// Why not a library: FlyingFox imports FoundationNetworking, which brings
/// libcurl, GnuTLS and 16 more shared libraries (about 3 MB resident) into a
/// supervisor that must idle under 30 MB; SwiftNIO would add event-loop
/// threads and more code than this whole file for two GET routes.
final class TinyHTTPServer: @unchecked Sendable {
    /// A response: status code, content type, body.
    struct Response: Sendable {
        var status: Int
        var contentType = "text/plain; charset=utf-8"
        var body: [UInt8]
    }

    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let route: @Sendable (_ method: Substring, _ path: Substring) -> Response
    private var thread: pthread_t?

    /// Binds and listens on `host:port` (IPv4); throws `Errno` naming the address.
    init(host: String, port: UInt16, route: @escaping @Sendable (Substring, Substring) -> Response) throws {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { throw Errno(EINVAL, "METRICS_ADDR host \(host)") }
        let fd = try retryingEINTR("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if bound != 0 || listen(fd, 16) != 0 {
            let e = errno
            close(fd)
            throw Errno(e, "listen on \(host):\(port)")
        }
        var pipeFDs: [Int32] = [0, 0]
        guard cshims_pipe_cloexec(&pipeFDs) == 0 else { let e = errno; close(fd); throw Errno(e, "pipe2") }
        listenFD = fd
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
        self.route = route
    }

    deinit {
        close(listenFD)
        close(wakeRead)
        close(wakeWrite)
    }

    /// Starts the accept loop on its own thread.
    func start() throws {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        let r = pthread_create(&t, nil, { arg in
            let server = Unmanaged<TinyHTTPServer>.fromOpaque(arg!).takeRetainedValue()
            server.acceptLoop()
            return nil
        }, box.toOpaque())
        guard r == 0 else { box.release(); throw Errno(r, "pthread_create") }
        thread = t
    }

    /// Stops the accept loop and waits for its thread.
    func stop() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func acceptLoop() {
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        while true {
            if poll(&fds, 2, -1) < 0 { if errno == EINTR { continue } else { return } }
            if fds[1].revents != 0 { return }
            let conn = cshims_accept_cloexec(listenFD)
            if conn < 0 { continue }
            serve(conn)
            close(conn)
        }
    }

    private func serve(_ fd: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        // Read the head only (these endpoints take no body); bounded to 8 KiB.
        while request.count < 8192, !request.ends(with: [13, 10, 13, 10]), !request.ends(with: [10, 10]) {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            request += chunk[0..<n]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let response: Response
        if parts.count == 3, parts[2].hasPrefix("HTTP/1.") {
            let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
            response = route(parts[0], path)
        } else {
            response = Response(status: 400, body: Array("bad request\n".utf8))
        }
        let head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
            + "Content-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\n"
            + "Connection: close\r\n\r\n"
        try? writeAll(fd, Array(head.utf8) + (parts.first == "HEAD" ? [] : response.body))
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
