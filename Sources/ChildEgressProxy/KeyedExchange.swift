#if canImport(Glibc)
import Glibc
#endif
import ChildHTTP
import Foundation
import RunnerCore

/// One keyed exchange, reached from libcurl's callbacks: collects the
/// response head, sends it to the caller once complete, then streams the
/// body. A model call's answer also passes its `UsageReader`, and, when the
/// proxy asked for a chat stream's usage itself, its `UsageChunkFilter`.
/// With `holdRetryable`, an answer whose status `ProviderRetry` retries is
/// held back instead (up to `holdCap` bytes of it), so that the call can be
/// tried again with nothing of it sent; `release()` sends what was held.
final class Exchange: CurlReceiver {
    let client: Int32
    var status = 0
    var headers: [String] = []
    var headSent = false
    var broken = false
    /// Body bytes written to the caller.
    var bytesSent = 0
    var usage: UsageReader?
    var filter: UsageChunkFilter?
    let holdRetryable: Bool
    /// A retryable answer held back (its head not sent), and its body so far.
    private(set) var held = false
    private var heldBody: [UInt8] = []
    /// The held answer's `Retry-After`, else the wait its Google error body asks for.
    var retryDelay: String? { retryAfter ?? ProviderRetry.googleRetryDelay(heldBody) }
    private var retryAfter: String?
    /// The most of a held answer's body kept (an error body is small); past it, the answer goes out.
    static let holdCap = 256 << 10

    init(client: Int32, usage: UsageReader? = nil, stripUsageChunk: Bool = false, holdRetryable: Bool = false) {
        self.client = client
        self.usage = usage
        self.holdRetryable = holdRetryable
        if stripUsageChunk { filter = UsageChunkFilter() }
    }

    func header(_ line: String) -> Bool {
        headerLine(line)
        return !broken
    }

    func headerLine(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .newlines)
        if trimmed.hasPrefix("HTTP/") {
            status = Int(trimmed.split(separator: " ").dropFirst().first ?? "") ?? 0
            headers = []
            retryAfter = nil
        } else if trimmed.isEmpty {
            // An interim 1xx head is not relayed; the final one is, once, unless it is held.
            if status >= 200 && !headSent && !held {
                if holdRetryable && ProviderRetry.isRetryable(status: status) { held = true } else { sendHead() }
            }
        } else if let colon = trimmed.firstIndex(of: ":") {
            let name = trimmed[..<colon].lowercased()
            if name == "retry-after" { retryAfter = String(trimmed[trimmed.index(after: colon)...]) }
            if name == "content-type" {
                let streamed = trimmed[trimmed.index(after: colon)...].lowercased().contains("text/event-stream")
                usage?.streamed = streamed
                if !streamed || !(200..<300).contains(status) { filter = nil }
            }
            if !HTTPHead.hopByHop.contains(name) && name != "content-length" { headers.append(trimmed) }
        }
    }

    func sendHead() {
        headSent = true
        if usage?.streamed != true || !(200..<300).contains(status) { filter = nil }
        let head = "HTTP/1.1 \(status) Provider\r\n" + headers.map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n"
        if (try? writeAll(client, Array(head.utf8))) == nil { broken = true }
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if held {
            if heldBody.count + bytes.count <= Self.holdCap { heldBody.append(contentsOf: bytes); return true }
            // Too large to hold: it goes out, and the call is not retried.
            release()
            if broken { return false }
        }
        if !headSent { sendHead() }
        if broken { return false }
        usage?.feed(bytes)
        if filter != nil {
            return send(filter!.pass(bytes))
        }
        if (try? writeAll(client, bytes)) == nil { broken = true; return false }
        bytesSent += bytes.count
        return true
    }

    private func send(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        if (try? writeAll(client, bytes)) == nil { broken = true; return false }
        bytesSent += bytes.count
        return true
    }

    /// Sends a held answer (no retry after all): its head, then its body so far.
    func release() {
        guard held else { return }
        held = false
        sendHead()
        let body = heldBody
        heldBody = []
        if !broken { _ = send(body) }
    }

    /// The answer ended: what the filter held back goes out, the usage is read.
    func finish() {
        if filter != nil, !broken { _ = send(filter!.finish()) }
        usage?.finish()
    }
}
