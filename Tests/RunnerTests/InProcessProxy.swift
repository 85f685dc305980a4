#if canImport(Glibc)
import Glibc
#endif
import ChildEgressProxy
import Foundation
import RunnerCore

/// The job's real egress proxy server (`ProxyServer`), run in this test
/// process on the Unix socket its ticket names, for tests that speak HTTP
/// to it directly. Its events go to `events` (one JSON line each).
final class InProcessProxy: @unchecked Sendable {
    let ticket: EgressProxyTicket
    let events: String
    private let listener: Int32
    private let eventsFD: Int32

    /// Serves `ticket`; the events file is `eventsPath`. `keyedLimit` and
    /// `idleSeconds` replace the server's defaults (for tests that reach them).
    init(_ ticket: EgressProxyTicket, eventsPath: String, keyedLimit: Int = ProxyServer.keyedRequestLimit,
         idleSeconds: Int = ProxyServer.tunnelIdleSeconds) throws {
        // As the proxy process does (ProxyMain): a write to a client that left is an error, not a signal.
        signal(SIGPIPE, SIG_IGN)
        self.ticket = ticket
        events = eventsPath
        eventsFD = open(eventsPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        let server = ProxyServer(ticket: ticket, out: EventWriter(fd: eventsFD), keyedLimit: keyedLimit, idleSeconds: idleSeconds)
        listener = try SocketIO.listenUnix(ticket.socketPath)
        let fd = listener
        Thread.detachNewThread { SocketIO.serve(fd) { server.handle($0) } }
    }

    /// Ends the accept loop (EINVAL). The listening descriptor is left open:
    /// a close could hand its number to another test while accept still holds it.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(eventsFD)
    }

    /// Sends `request` and reads the answer until the proxy closes the
    /// connection (for a CONNECT, until the end of the answer's head: an
    /// opened tunnel would stay open); `complete` is false when it did not
    /// within 20 s.
    func exchange(_ request: [UInt8]) async throws -> (answer: String, complete: Bool) {
        let socket = ticket.socketPath
        let headOnly = request.starts(with: Array("CONNECT".utf8))
        return try await onDedicatedThread {
            let fd = try UnixSocket.connect(socket)
            defer { close(fd) }
            var tv = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            try? writeAll(fd, request)
            var answer = [UInt8](), buf = [UInt8](repeating: 0, count: 4096), complete = false
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n == 0 { complete = true }
                if n <= 0 { break }
                answer += buf[0..<n]
                if headOnly, answer.firstRange(of: Array("\r\n\r\n".utf8)) != nil { complete = true; break }
            }
            return (String(decoding: answer, as: UTF8.self), complete)
        }
    }

    func exchange(_ request: String) async throws -> String { try await exchange(Array(request.utf8)).answer }

    /// The events written so far.
    func eventLog() -> [EgressEvent] {
        ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(EgressEvent.self, from: Data($0.utf8)) }
    }
}
