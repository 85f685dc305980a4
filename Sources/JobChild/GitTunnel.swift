#if canImport(Glibc)
import Glibc
#endif
import ChildEgressProxy
import ChildPublishing
import Foundation
import RunnerCore

/// The git remote's way out under JOB_NETWORK=proxy: a port on the job's
/// loopback (`NetworkSetup.tunnelPort`) whose connections reach the remote's
/// host:port through a CONNECT tunnel of the job's egress proxy, opened only
/// after the agent phase (no agent process is left to use it). It keeps the
/// proxy's answer to that CONNECT, its HTTP status, so that a refusal by the
/// proxy is reported as one (`EgressAnswer`), never as the remote's.
/// - plain http: libgit2 sends those straight to the host, never through an
///   HTTP proxy, so the remote URL is rewritten to the port and each
///   connection becomes a tunnel;
/// - https: the port is libgit2's HTTP proxy: it passes on libgit2's CONNECT
///   for the remote's host:port (and nothing else) and hands back the answer.
final class GitTunnel: Sendable {
    /// The URL libgit2 connects to instead of the remote's (plain http), or nil.
    let connectURL: String?
    /// The HTTP proxy libgit2 uses (https), or nil.
    let proxyURL: String?
    private let answer = Locked<EgressAnswer?>(nil)

    /// The egress proxy's last answer to a CONNECT for the remote.
    var lastAnswer: EgressAnswer? { answer.withLock { $0 } }

    /// Opens the tunnel for `remote` (an http(s) URL) through the egress proxy's socket at `socketPath`.
    init(remote url: URLParts, socketPath: String) throws {
        let target = (url.host.contains(":") ? "[\(url.host)]" : url.host) + ":\(url.port)"
        let local = "http://127.0.0.1:\(NetworkSetup.tunnelPort)"
        let https = url.scheme == "https"
        connectURL = https ? nil : local + url.path
        proxyURL = https ? local : nil
        let fd = try SocketIO.listenLoopback(port: NetworkSetup.tunnelPort).fd
        let answer = self.answer
        Thread.detachNewThread {
            SocketIO.serve(fd) { client in
                var early: [UInt8] = []
                if https {
                    // libgit2's CONNECT: only to the remote's own host and port.
                    guard let (head, rest) = SocketIO.readHead(client),
                          head.split(separator: "\r\n").first?.split(separator: " ").dropFirst().first.map(String.init) == target
                    else {
                        _ = try? writeAll(client, Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".utf8))
                        return
                    }
                    early = rest
                }
                guard let upstream = try? SocketIO.connectUnix(socketPath) else { return }
                defer { close(upstream) }
                guard (try? writeAll(upstream, Array("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n".utf8))) != nil,
                      let (head, rest) = SocketIO.readHead(upstream) else { return }
                let status = Self.status(head) ?? 0
                answer.withLock { $0 = EgressAnswer(target: target, status: status) }
                if https {
                    // libgit2 reads the proxy's answer itself (a refusal ends its request there).
                    guard (try? writeAll(client, Array((head + "\r\n\r\n").utf8) + rest)) != nil, status == 200 else { return }
                    if !early.isEmpty, (try? writeAll(upstream, early)) == nil { return }
                } else {
                    guard status == 200 else { return }
                    if !rest.isEmpty, (try? writeAll(client, rest)) == nil { return }
                }
                SocketIO.relay(client, upstream)
            }
        }
    }

    /// The status code of a response head's first line (`HTTP/1.1 403 Forbidden`).
    static func status(_ head: String) -> Int? {
        let first = head.split(separator: "\r\n", maxSplits: 1).first ?? ""
        let parts = first.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else { return nil }
        return Int(parts[1])
    }
}
