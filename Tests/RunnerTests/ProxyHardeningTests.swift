#if canImport(Glibc)
import Glibc
#endif
import ChildEgressProxy
import ChildHTTP
import Foundation
import RunnerCore
import Testing

/// The egress proxy reads requests from the agent, which is untrusted: a
/// head that could carry a second header line, a body framing that could
/// crash or fool it, an oversized body, a Host of the agent's choosing or a
/// path that climbs out of the provider's base URL is refused, the proxy
/// stays up, and nothing reaches the upstream. The real proxy server runs
/// in-process on a Unix socket; the provider is the loopback fake_provider.py,
/// which records every header line it got.
@Suite(.serialized) struct ProxyHardeningTests {
    /// A proxy in front of fake_provider.py, as an OpenAI-compatible provider
    /// whose base URL has a path (`/openai/v1`), and allowed as a plain-HTTP destination.
    final class Rig: @unchecked Sendable {
        let dir: String, log: String
        let provider: FixtureServer
        let proxy: InProcessProxy
        var ticket: EgressProxyTicket { proxy.ticket }
        static let key = "sk-hardening-real-key-0123456789"

        init() async throws {
            dir = TestEnv.tempDir("proxy-hardening")
            log = dir + "/provider.jsonl"
            provider = try await FixtureServer("fake_provider.py", ["ok", log])
            let ticket = EgressProxyTicket(socketPath: dir + "/egress.sock", rules: [EgressRule(host: "127.0.0.1", port: provider.port)],
                                           provider: ClineProvider(kind: .openaiCompatible,
                                                                   upstreamBaseURL: "http://127.0.0.1:\(provider.port)/openai/v1"),
                                           providerKey: Self.key)
            proxy = try InProcessProxy(ticket, eventsPath: dir + "/events.jsonl")
        }

        func stop() {
            proxy.stop()
            provider.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }

        /// Sends `request` and reads the answer until the proxy closes the
        /// connection; `complete` is false when it did not within 20 s.
        func exchange(_ request: [UInt8]) async throws -> (answer: String, complete: Bool) {
            try await proxy.exchange(request)
        }

        func exchange(_ request: String) async throws -> String { try await exchange(Array(request.utf8)).answer }

        func requests() throws -> [JSONValue] { try FixtureServer.jsonLines(log) }

        /// A chat request the provider answers 200, with `model`.
        func chat(_ model: String = "m1") -> String {
            let body = "{\"model\":\"\(model)\"}"
            return "POST /provider/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        }
    }

    /// A bare LF (or any control character) in a header value would end the
    /// header line where libcurl writes it, letting the agent add headers, or
    /// a body, before the real key.
    @Test func aHeadThatCouldInjectALineIsRefused() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let heads = [
            "GET /provider/models HTTP/1.1\r\nHost: x\r\nX-Note: a\nAuthorization: Bearer sk-injected\r\n\r\n",
            "GET /provider/models HTTP/1.1\r\nHost: x\r\nX-Note: a\rAuthorization: Bearer sk-injected\r\n\r\n",
            "GET /provider/models HTTP/1.1\r\nHost: x\r\nX-Note: a\u{0}b\r\n\r\n",
            "GET /provider/models HTTP/1.1\r\nHost: x\r\nX Note: a\r\n\r\n",
            "GET /provider/models HTTP/1.1\r\nHost: x\r\nX-Note : a\r\n\r\n",
            "GET /provider/models HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n Authorization: Bearer sk-injected\r\n\r\n",
            "GET /provider/models\nAuthorization: Bearer sk-injected HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for head in heads {
            let answer = try await rig.exchange(head)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(head.debugDescription): \(answer)")
        }
        #expect(try rig.requests().isEmpty, "no refused head reached the provider")
        // A tab inside a value is fine, and the proxy is still up.
        let ok = try await rig.exchange("GET /provider/models HTTP/1.1\r\nHost: x\r\nUser-Agent: a\tb\r\nConnection: close\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
        let seen = try rig.requests()
        #expect(seen.count == 1 && seen.first?["headers"]?["user-agent"]?.stringValue == "a\tb", "\(seen)")
    }

    /// Lengths that trapped the proxy (a negative Content-Length or chunk
    /// size, a chunk size near Int.max), one that overflowed into an empty
    /// body, and both framings at once: each a 400, and the proxy stays up.
    @Test func badBodyFramingIsA400AndTheProxyStaysUp() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let start = "POST /provider/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        let bad = [
            start + "Content-Length: -5\r\n\r\n{}",
            start + "Content-Length: 99999999999999999999999\r\n\r\n{}",
            start + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            start + "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            start + "Transfer-Encoding: gzip\r\n\r\n{}",
            start + "Transfer-Encoding: chunked\r\n\r\n-1\r\n{}\r\n0\r\n\r\n",
            start + "Transfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n{}\r\n0\r\n\r\n",
            start + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
        ]
        for request in bad {
            let answer = try await rig.exchange(request)
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(request.debugDescription): \(answer)")
            #expect(answer.contains("\"EGRESS_PROXY\""), "\(answer)")
        }
        #expect(try rig.requests().isEmpty, "no malformed body reached the provider")
        // Still up: a chunked body with an extension and a trailer is decoded whole.
        let body = Array("{\"model\":\"chunked-model\"}".utf8)
        let chunked = start + "Transfer-Encoding: chunked\r\n\r\n" + "3;ext=1\r\n" + String(decoding: body[0..<3], as: UTF8.self)
            + "\r\n\(String(body.count - 3, radix: 16))\r\n" + String(decoding: body[3...], as: UTF8.self) + "\r\n0\r\nX-Trailer: t\r\n\r\n"
        let ok = try await rig.exchange(chunked)
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
        let plain = try await rig.exchange(rig.chat("plain-model"))
        #expect(plain.hasPrefix("HTTP/1.1 200"), "\(plain)")
        #expect(try rig.requests().map { $0["model"]?.stringValue } == ["chunked-model", "plain-model"])
    }

    /// A body over the 16 MiB cap is a 413 before any of it is held, by
    /// Content-Length or by chunk size, and never reaches the provider.
    @Test func anOverCapBodyIsA413() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let start = "POST /provider/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        let byLength = try await rig.exchange(start + "Content-Length: \((16 << 20) + 1)\r\n\r\n{}")
        #expect(byLength.hasPrefix("HTTP/1.1 413"), "\(byLength)")
        let byChunk = try await rig.exchange(start + "Transfer-Encoding: chunked\r\n\r\n\(String((16 << 20) + 1, radix: 16))\r\n{}")
        #expect(byChunk.hasPrefix("HTTP/1.1 413"), "\(byChunk)")
        #expect(try rig.requests().isEmpty)
        let ok = try await rig.exchange(rig.chat())
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
    }

    /// `..` segments (plain or %2e, or behind a separator an upstream may
    /// decode: %2f, %5c, a backslash) would be resolved by libcurl or the
    /// upstream and carry the key out of the base URL's path.
    @Test func aPathThatClimbsOutOfTheBaseURLIsRefused() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        for path in ["/provider/../../admin", "/provider/%2e%2e/%2E%2E/admin", "/provider/models/./../../../x",
                     "/provider/.%2e/.%2E/admin?x=1", "/provider/..%2f..%2fadmin", "/provider/..%5C..%5cadmin",
                     "/provider/..\\..\\admin"] {
            let answer = try await rig.exchange("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 400"), "\(path): \(answer)")
        }
        #expect(try rig.requests().isEmpty, "the key went nowhere")
        let ok = try await rig.exchange("GET /provider/models?after=..x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
        #expect(try rig.requests().first?["path"]?.stringValue == "/openai/v1/models")
    }

    /// A plain-HTTP request in absolute form reaches the allowed destination
    /// with that destination's Host, not the one the agent wrote.
    @Test func theHostHeaderIsTheDestinations() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let target = "127.0.0.1:\(rig.provider.port)"
        let answer = try await rig.exchange("GET http://\(target)/v1/models HTTP/1.1\r\nHost: other-site.example\r\n"
            + "Connection: close\r\n\r\n")
        #expect(answer.split(separator: " ").dropFirst().first == "200", "\(answer)")
        let seen = try rig.requests()
        #expect(seen.count == 1, "\(seen)")
        #expect(seen.first?.headerValues("host") == [target], "\(seen)")
    }

    /// A keyed route forwards what an API client sends; a TRACE (which an
    /// upstream could answer by echoing the request, key included) is a 405
    /// that never reaches it.
    @Test func onlyAnAPIClientsMethodsAreForwarded() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        for method in ["TRACE", "CONNECTX", "PROPFIND"] {
            let answer = try await rig.exchange("\(method) /provider/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answer.hasPrefix("HTTP/1.1 405"), "\(method): \(answer)")
        }
        #expect(try rig.requests().isEmpty, "nothing reached the provider")
        let ok = try await rig.exchange(rig.chat())
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok)")
    }

    /// A chunked body's trailer section is bounded in bytes: lines of one
    /// character each, made of a letter and many combining marks, do not
    /// get past the 32 KiB limit.
    @Test func theTrailerLimitCountsBytes() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let mark = String(repeating: "\u{0301}", count: 1500)
        let trailers = (0..<20).map { "X-T\($0): a\(mark)\r\n" }.joined()
        let request = "POST /provider/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + trailers + "\r\n"
        let answer = try await rig.exchange(request)
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer.prefix(200))")
        #expect(try rig.requests().isEmpty)
    }

    /// A HEAD on a keyed route ends with the head (libcurl's NOBODY), rather
    /// than waiting for a body a HEAD answer never has.
    @Test func aHEADOnTheRouteEnds() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let (answer, complete) = try await rig.exchange(Array("HEAD /provider/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        #expect(complete, "the proxy closed the connection after the head: \(answer)")
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(try rig.requests().map { $0["method"]?.stringValue } == ["HEAD"])
    }

    /// libcurl would add `Expect: 100-continue` to a body over 1 MiB and wait
    /// up to a second for an answer to it; CurlEasy never sends it.
    @Test func curlEasySendsNoExpect() async throws {
        let dir = TestEnv.tempDir("curl-expect")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gemini = try await FakeGemini(scenario: "ok", dir: dir)
        defer { gemini.stop() }
        let body = Data(("{\"pad\":\"" + String(repeating: "x", count: 2 << 20) + "\"}").utf8)
        let response = try await onDedicatedThread {
            try CurlEasy().post(gemini.base + "/v1beta/models/m:generateContent", headers: ["Content-Type: application/json"],
                                body: body, connectTimeout: 5, totalTimeout: 30, maxResponseBytes: 1 << 20)
        }
        #expect(response.status == 200)
        let seen = try gemini.requests()
        #expect(seen.count == 1)
        #expect(seen.first?.headerValues("content-type") == ["application/json"], "\(seen)")
        #expect(seen.first?.headerValues("expect") == [], "\(seen)")
    }

    /// A failed listen (a name too long even through /proc/self/fd) closes its socket.
    @Test func aFailedListenLeaksNoDescriptor() throws {
        let dir = TestEnv.tempDir("listen-leak")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/" + String(repeating: "s", count: 120)
        func open() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }
        let before = open()
        for _ in 0..<300 { #expect(throws: Errno.self) { try UnixSocket.listen(path) } }
        // Other suites open descriptors meanwhile; 300 leaked ones would show.
        #expect(open() - before < 150, "descriptors before \(before), after \(open())")
    }

    /// The Gemini route's key and token never show in an interpolation.
    @Test func theRoutesDescriptionsHoldNoSecret() {
        let token = GeminiRoute.newToken()
        let upstream = GeminiUpstream(apiBase: "https://g.example", apiKey: "AIza-secret-key", routeToken: token)
        let ticket = EgressProxyTicket(socketPath: "/s", rules: [], provider: ClineProvider(kind: .openai, upstreamBaseURL: "https://o"),
                                       providerKey: "sk-secret", gemini: upstream)
        for text in ["\(upstream)", "\(GeminiRoute(socketPath: "/s", token: token))", "\(ticket)", String(reflecting: ticket)] {
            #expect(!text.contains("AIza-secret-key") && !text.contains(token) && !text.contains("sk-secret"), "\(text)")
        }
    }
}

extension JSONValue {
    /// Every value of header `name` (lower case) in a fixture's request line
    /// (its `header_list`, duplicates included), in order.
    func headerValues(_ name: String) -> [String] {
        (self["header_list"]?.arrayValue ?? []).compactMap { pair in
            guard let p = pair.arrayValue, p.count == 2, p[0].stringValue == name else { return nil }
            return p[1].stringValue
        }
    }

    /// Every header value in a fixture's request line.
    var allHeaderValues: [String] {
        (self["header_list"]?.arrayValue ?? []).compactMap { $0.arrayValue?.last?.stringValue }
    }
}
