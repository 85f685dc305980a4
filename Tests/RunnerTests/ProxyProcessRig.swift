#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
@testable import SupervisorKit

/// The real egress proxy process (`agent-runner-job --egress-proxy`, started
/// as the supervisor starts it) in front of fake_provider.py, for tests of
/// what it meters and refuses. Its events are gathered as they arrive.
final class ProxyProcessRig: @unchecked Sendable {
    let dir: String, log: String
    let provider: FixtureServer
    let proxy: EgressProxyProcess
    let routeToken = GeminiRoute.newToken()
    private let events = Locked<[EgressEvent]>([])
    private let reader: Task<Void, Never>

    /// The provider route speaks `kind` to fake_provider.py under `basePath`;
    /// the Gemini route goes to it too. With `dailyBudgetUSD`, each `reserve`
    /// event is answered as the supervisor would, with `refuse`'s notice (nil: reserved).
    init(_ kind: ClineProvider.Kind, basePath: String = "", scenario: String = "ok",
         budget: JobBudget? = nil, prices: PriceTable? = nil, retry: ProviderRetry? = nil, dailyBudgetUSD: Double? = nil,
         refuse: @escaping @Sendable (SpendReservation) -> BudgetNotice? = { _ in nil }) async throws {
        dir = TestEnv.tempDir("proxy-rig")
        log = dir + "/provider.jsonl"
        provider = try await FixtureServer("fake_provider.py", [scenario, log])
        let base = "http://127.0.0.1:\(provider.port)"
        var ticket = EgressProxyTicket(socketPath: dir + "/egress.sock", rules: [],
                                       provider: ClineProvider(kind: kind, upstreamBaseURL: base + basePath),
                                       providerKey: "sk-rig-real-key-0123456789",
                                       gemini: GeminiUpstream(apiBase: base, apiKey: "AIza-rig-key", routeToken: routeToken),
                                       budget: budget, prices: prices, retry: retry)
        ticket.dailyBudgetUSD = dailyBudgetUSD
        proxy = try await EgressProxyProcess.start(ticket: ticket, logger: CapturedLog().logger, redactor: Locked(Redactor()))
        let proxy = self.proxy, events = self.events
        reader = Task {
            await proxy.relay { event in
                events.withLock { $0.append(event) }
                if event.kind == .reserve, let r = event.reservation {
                    await proxy.answer(SharedSpendAnswer(reservation: r.id, refusal: refuse(r)))
                }
            }
        }
    }

    func stop() {
        proxy.stop()
        provider.stop()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// POSTs `body` (JSON) to `path` on the proxy's socket; the whole answer.
    func post(_ path: String, _ body: String, extra: String = "") async throws -> String {
        let request = "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\(extra)"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        let socket = dir + "/egress.sock"
        return try await onDedicatedThread {
            let fd = try UnixSocket.connect(socket)
            defer { close(fd) }
            var tv = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            try writeAll(fd, Array(request.utf8))
            var answer = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                answer += buf[0..<n]
            }
            return String(decoding: answer, as: UTF8.self)
        }
    }

    /// The events of `kind` once there are at least `count` (waiting up to 20 s).
    func events(_ kind: EgressEvent.Kind, atLeast count: Int) async -> [EgressEvent] {
        for _ in 0..<200 {
            let found = events.withLock { $0.filter { $0.kind == kind } }
            if found.count >= count { return found }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return events.withLock { $0.filter { $0.kind == kind } }
    }

    var allEvents: [EgressEvent] { events.withLock { $0 } }

    func requests() throws -> [JSONValue] { try FixtureServer.jsonLines(log) }
}
