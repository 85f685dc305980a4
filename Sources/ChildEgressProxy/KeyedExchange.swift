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
    init(client: Int32, usage: UsageReader? = nil, stripUsageChunk: Bool = false) {
        self.client = client
        self.usage = usage
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
        } else if trimmed.isEmpty {
            // An interim 1xx head is not relayed; the final one is, once.
            if status >= 200 && !headSent { sendHead() }
        } else if let colon = trimmed.firstIndex(of: ":") {
            let name = trimmed[..<colon].lowercased()
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

    /// The answer ended: what the filter held back goes out, the usage is read.
    func finish() {
        if filter != nil, !broken { _ = send(filter!.finish()) }
        usage?.finish()
    }
}
