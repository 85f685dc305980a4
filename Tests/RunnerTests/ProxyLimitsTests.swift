#if canImport(Glibc)
import Glibc
#endif
@testable import ChildEgressProxy
import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// The egress proxy's smaller holes, closed: plain HTTP is one request per
/// connection with exactly its declared body; a rule without a port opens
/// no tunnel to port 80; a tunnel that idles is closed; the keyed routes
/// serve a bounded number of requests at once; the proxy process runs under
/// its own memory and pids limits. Every upstream is on loopback.
@Suite(.serialized) struct ProxyLimitsTests {
    /// raw_upstream.py (records every byte per connection) behind an in-process proxy with an exact rule for it.
    final class Rig: @unchecked Sendable {
        let dir: String, log: String
        let upstream: FixtureServer
        let proxy: InProcessProxy

        init(keyedLimit: Int = ProxyServer.keyedRequestLimit, idleSeconds: Int = ProxyServer.tunnelIdleSeconds,
             provider: Int? = nil) async throws {
            dir = TestEnv.tempDir("proxy-limits")
            log = dir + "/upstream.jsonl"
            upstream = try await FixtureServer("raw_upstream.py", [log])
            let ticket = EgressProxyTicket(socketPath: dir + "/egress.sock",
                                           rules: [EgressRule(host: "127.0.0.1", port: upstream.port), EgressRule("127.0.0.1")!],
                                           provider: provider.map { ClineProvider(kind: .openaiCompatible, upstreamBaseURL: "http://127.0.0.1:\($0)/v1") },
                                           providerKey: "sk-limits-key-0123456789")
            proxy = try InProcessProxy(ticket, eventsPath: dir + "/events.jsonl", keyedLimit: keyedLimit, idleSeconds: idleSeconds)
        }

        func stop() {
            proxy.stop()
            upstream.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }

        /// What raw_upstream.py received, one string per connection (once it closed).
        func received() -> [String] {
            ((try? FixtureServer.jsonLines(log)) ?? []).compactMap { $0["received"]?.stringValue }
        }
    }

    /// A second request pipelined behind the first (with another Host) does
    /// not reach the allowed destination: the proxy sends the head and
    /// exactly the declared body, reads nothing more from the client, and
    /// answers with `Connection: close`.
    @Test func plainHTTPIsOneRequestWithItsDeclaredBody() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let target = "127.0.0.1:\(rig.upstream.port)"
        let second = "GET http://\(target)/admin HTTP/1.1\r\nHost: internal-admin.example\r\n\r\n"
        let (answer, complete) = try await rig.proxy.exchange(Array(("POST http://\(target)/submit HTTP/1.1\r\nHost: x\r\n"
            + "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello" + second).utf8))
        #expect(complete && answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(answer.contains("Connection: close\r\n") && !answer.lowercased().contains("keep-alive"), "\(answer)")
        #expect(answer.hasSuffix("\r\n\r\nok"), "\(answer)")
        // The upstream logs a connection once it has closed, which may be just after the answer arrived.
        _ = await eventually(30) { !rig.received().isEmpty }
        let got = rig.received()
        #expect(got.count == 1, "\(got)")
        let one = try #require(got.first)
        #expect(one.hasPrefix("POST /submit HTTP/1.1\r\nHost: \(target)\r\n") && one.hasSuffix("\r\n\r\nhello"), "\(one)")
        #expect(!one.contains("admin"), "the pipelined request reached the destination: \(one)")
        // A chunked body has no declared length: 411, and nothing is sent.
        let chunked = try await rig.proxy.exchange("POST http://\(target)/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5\r\nhello\r\n0\r\n\r\n")
        #expect(chunked.hasPrefix("HTTP/1.1 411"), "\(chunked)")
        try await Task.sleep(for: .seconds(1))
        #expect(rig.received().count == 1)
    }

    /// A rule without a port opens a tunnel to 443 only (and plain HTTP to
    /// 80 only): `CONNECT host:80` is not allowed. Refused by name, before
    /// any lookup or connection.
    @Test func aRuleWithoutAPortOpensNoTunnelToPort80() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let answer = try await rig.proxy.exchange("CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n")
        #expect(answer.hasPrefix("HTTP/1.1 403"), "\(answer)")
        let denied = rig.proxy.eventLog().filter { $0.kind == .denied }
        #expect(denied.map(\.reason) == ["not_allowed"] && denied.first?.target == "127.0.0.1:80", "\(denied)")
        let p = EgressPolicy(rules: [EgressRule("example.com")!])
        let dns: (String, Int) -> [IPAddress] = { _, _ in [IPAddress(literal: "203.0.113.20")!] }
        #expect(p.decide(host: "example.com", port: 80, tunnel: true, resolve: dns, hostAddresses: [])
                == .deny(.notAllowed, "not in JOB_EGRESS_ALLOW"))
        #expect(p.decide(host: "example.com", port: 443, tunnel: true, resolve: dns, hostAddresses: []) == .allow(dns("", 0)))
        #expect(p.decide(host: "example.com", port: 80, tunnel: false, resolve: dns, hostAddresses: []) == .allow(dns("", 0)))
        #expect(p.decide(host: "example.com", port: 443, tunnel: false, resolve: dns, hostAddresses: [])
                == .deny(.notAllowed, "not in JOB_EGRESS_ALLOW"))
        // A rule with a port allows that port, both ways.
        let ported = EgressPolicy(rules: [EgressRule("example.com:8443")!])
        #expect(ported.decide(host: "example.com", port: 8443, tunnel: true, resolve: dns, hostAddresses: []) == .allow(dns("", 0)))
        #expect(ported.decide(host: "example.com", port: 443, tunnel: true, resolve: dns, hostAddresses: [])
                == .deny(.notAllowed, "not in JOB_EGRESS_ALLOW"))
    }

    /// The runner host's own addresses count as local: a rule whose name
    /// resolves to the host's public address does not reach the host's
    /// services (decided with stand-in interface addresses, before any connect).
    @Test func theHostsOwnAddressesAreNotPublic() {
        let p = EgressPolicy(rules: [EgressRule("*.example.org")!, EgressRule("self.example.net:8080")!])
        let own = ["203.0.113.7", "2001:db8:1::7", "127.0.0.1"].compactMap(IPAddress.init(literal:))
        let dns: (String, Int) -> [IPAddress] = { host, _ in
            (["self.example.org": ["203.0.113.7"], "mapped.example.org": ["::ffff:203.0.113.7"],
              "both.example.org": ["203.0.113.7", "198.51.100.9"], "self.example.net": ["203.0.113.7"]][host] ?? [])
                .compactMap(IPAddress.init(literal:))
        }
        #expect(p.decide(host: "self.example.org", port: 443, tunnel: true, resolve: dns, hostAddresses: own)
                == .deny(.nonPublicAddress, "resolves to 203.0.113.7, an address of this host"))
        guard case .deny(.nonPublicAddress, _) = p.decide(host: "mapped.example.org", port: 443, tunnel: true, resolve: dns,
                                                          hostAddresses: own) else {
            Issue.record("an IPv4-mapped form of the host's address must be refused too")
            return
        }
        #expect(p.decide(host: "both.example.org", port: 443, tunnel: true, resolve: dns, hostAddresses: own)
                == .allow([IPAddress(literal: "198.51.100.9")!]))
        // The same name is public from another host.
        #expect(p.decide(host: "self.example.org", port: 443, tunnel: true, resolve: dns, hostAddresses: [])
                == .allow([IPAddress(literal: "203.0.113.7")!]))
        // An operator's exact host:port rule still reaches what it names.
        #expect(p.decide(host: "self.example.net", port: 8080, tunnel: true, resolve: dns, hostAddresses: own)
                == .allow([IPAddress(literal: "203.0.113.7")!]))
        // The real interface list (getifaddrs) holds loopback.
        #expect(HostAddresses.current().contains(IPAddress(literal: "127.0.0.1")!))
    }

    /// A tunnel through which no byte passes either way for `idleSeconds` is closed.
    @Test func anIdleTunnelIsClosed() async throws {
        let rig = try await Rig(idleSeconds: 1)
        defer { rig.stop() }
        let target = "127.0.0.1:\(rig.upstream.port)"
        let socket = rig.proxy.ticket.socketPath
        let (answer, closed) = try await onDedicatedThread { () -> (String, Bool) in
            let fd = try UnixSocket.connect(socket)
            defer { close(fd) }
            var tv = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            try writeAll(fd, Array("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n".utf8))
            var answer = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n == 0 { return (String(decoding: answer, as: UTF8.self), true) }
                if n < 0 { return (String(decoding: answer, as: UTF8.self), false) }
                answer += buf[0..<n]
            }
        }
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(closed, "the idle tunnel stayed open for 20 s")
    }

    /// The keyed routes serve `keyedLimit` requests at once: two clients
    /// that hold their requests open (a body that never comes) take both
    /// slots, a third request gets a 429 JSON error and never reaches the
    /// provider; once they go, requests pass again.
    @Test func theKeyedRoutesCapConcurrentRequests() async throws {
        let dir = TestEnv.tempDir("keyed-cap")
        let provider = try await FixtureServer("fake_provider.py", ["ok", dir + "/provider.jsonl"])
        defer { provider.stop(); try? FileManager.default.removeItem(atPath: dir) }
        let rig = try await Rig(keyedLimit: 2, provider: provider.port)
        defer { rig.stop() }
        let socket = rig.proxy.ticket.socketPath
        let head = "POST /provider/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
        var holders: [Int32] = []
        var answer = ""
        for _ in 0..<50 where !answer.hasPrefix("HTTP/1.1 429") {
            // Two holders still waiting for an answer (one that got any, or was cut, is replaced).
            holders = holders.filter { fd in
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 0) == 0 { return true }
                close(fd)
                return false
            }
            while holders.count < 2 {
                let fd = try UnixSocket.connect(socket)
                try writeAll(fd, Array(head.utf8))
                holders.append(fd)
            }
            try await Task.sleep(for: .milliseconds(100))
            answer = try await rig.proxy.exchange("GET /provider/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        }
        #expect(answer.hasPrefix("HTTP/1.1 429"), "\(answer)")
        #expect(answer.contains("Retry-After: 1\r\n") && answer.contains("\"EGRESS_PROXY\""), "\(answer)")
        for fd in holders { close(fd) }
        var after = ""
        for _ in 0..<50 where !after.hasPrefix("HTTP/1.1 200") {
            after = try await rig.proxy.exchange("GET /provider/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if !after.hasPrefix("HTTP/1.1 200") { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(after.hasPrefix("HTTP/1.1 200"), "the slots came back: \(after)")
    }

    /// The real proxy process: under RLIMIT_DATA (`ProxyMain.dataLimit`),
    /// and, where cgroups can be made, in a pids cgroup of its own (not the
    /// job's) with `pids.max` = `EgressProxyProcess.maxTasks`, removed when it stops.
    @Test func theProxyProcessRunsUnderItsOwnLimits() async throws {
        let dir = TestEnv.tempDir("proxy-process")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ticket = EgressProxyTicket(socketPath: dir + "/egress.sock", rules: [], provider: nil, providerKey: nil)
        let name = "proxy-test-" + UUID().uuidString.prefix(8)
        let proxy = try await EgressProxyProcess.start(ticket: ticket, cgroupName: name, logger: CapturedLog().logger,
                                                       redactor: Locked(Redactor()))
        let pid = proxy.process.pid
        let limits = (try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? ""
        let data = limits.split(separator: "\n").first { $0.hasPrefix("Max data size") } ?? ""
        #expect(data.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first == "\(ProxyMain.dataLimit)", "\(data)")
        if let parent = JobCgroup.parent {
            let cgroup = try #require(proxy.cgroup, "cgroups are available here, so the proxy has one")
            #expect(cgroup.path == parent + "/" + name)
            #expect(cgroup.members() == [pid])
            #expect((try? String(contentsOfFile: cgroup.path + "/pids.max", encoding: .utf8)) == "\(EgressProxyProcess.maxTasks)\n")
            proxy.stop()
            var gone = false
            for _ in 0..<100 where !gone {
                gone = !FileManager.default.fileExists(atPath: cgroup.path)
                if !gone { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(gone, "the proxy's cgroup is removed when it stops")
        } else {
            #expect(proxy.cgroup == nil)
            proxy.stop()
        }
    }
}
