#if canImport(Glibc)
import Glibc
#endif
import ChildHTTP
import Foundation
import RunnerCore

/// One keyed exchange, reached from libcurl's callbacks: collects the
/// response head, sends it to the caller once complete, then streams the body.
final class Exchange: CurlReceiver {
    let client: Int32
    var status = 0
    var headers: [String] = []
    var headSent = false
    var broken = false
    init(client: Int32) { self.client = client }

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
            if !HTTPHead.hopByHop.contains(name) && name != "content-length" { headers.append(trimmed) }
        }
    }

    func sendHead() {
        headSent = true
        let head = "HTTP/1.1 \(status) Provider\r\n" + headers.map { $0 + "\r\n" }.joined() + "Connection: close\r\n\r\n"
        if (try? writeAll(client, Array(head.utf8))) == nil { broken = true }
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if !headSent { sendHead() }
        if broken { return false }
        if (try? writeAll(client, bytes)) == nil { broken = true; return false }
        return true
    }
}
