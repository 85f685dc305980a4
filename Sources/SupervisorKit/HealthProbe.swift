#if canImport(Glibc)
import Glibc
#endif
import RunnerCore

/// The client side of `/healthz`, for `agent-runner health` (a container's
/// HEALTHCHECK): one blocking GET to the supervisor's own METRICS_ADDR, with
/// socket timeouts. A listener on 0.0.0.0 is asked on 127.0.0.1. Blocks:
/// call it on a dedicated thread.
public enum HealthProbe {
    /// The host that answers for a listener on `host`: one on every interface
    /// (0.0.0.0) is asked on loopback.
    public static func probeHost(_ host: String) -> String { host == "0.0.0.0" ? "127.0.0.1" : host }

    /// The status code and body of `GET path` on `address` (`host:port`,
    /// IPv4); throws `ConfigurationError` for a malformed address and `Errno`
    /// when nothing answers in `timeoutSeconds`.
    public static func get(address: String, path: String = "/healthz", timeoutSeconds: Int = 5) throws
        -> (status: Int, body: String) {
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw ConfigurationError("METRICS_ADDR", "'\(address)' is not host:port")
        }
        let host = probeHost(String(parts[0]))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            throw ConfigurationError("METRICS_ADDR", "'\(host)' is not an IPv4 address")
        }
        let fd = try retryingEINTR("socket") { socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        defer { close(fd) }
        var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        try withUnsafePointer(to: &addr) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try connectRetryingEINTR(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size), "connect to \(host):\(port)",
                                         timeoutMs: Int32(timeoutSeconds * 1000))
            }
        }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            sent += try request[sent...].withUnsafeBytes { b in try retryingEINTR("send") { send(fd, b.baseAddress, b.count, Int32(MSG_NOSIGNAL)) } }
        }
        // The answer is a few lines; 64 KiB bounds a stranger on the port.
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while answer.count < 65_536 {
            let n = try chunk.withUnsafeMutableBytes { b in try retryingEINTR("recv") { recv(fd, b.baseAddress, b.count, 0) } }
            if n == 0 { break }
            answer += chunk[..<n]
        }
        let text = String(decoding: answer, as: UTF8.self)
        let statusLine = text.split(separator: "\r\n", maxSplits: 1).first ?? ""
        let fields = statusLine.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = Int(fields[1]) else {
            throw Errno(EPROTO, "no HTTP answer from \(host):\(port)")
        }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }
}
