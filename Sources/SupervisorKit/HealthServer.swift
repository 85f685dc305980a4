import Foundation
import Logging
import RunnerCore
import ServiceLifecycle

/// Liveness facts the claim loop updates: when it last turned, and whether
/// the database answered last time it was asked.
public final class HealthState: Sendable {
    private let state = Locked<(tick: ContinuousClock.Instant, databaseOK: Bool)>((.now, true))
    public init() {}
    func tick() { state.withLock { $0.tick = .now } }
    func database(ok: Bool) { state.withLock { $0.databaseOK = ok } }

    /// Healthy when the loop turned within `maxSilence` and the database answered.
    public func healthy(maxSilence: Duration) -> (ok: Bool, reason: String) {
        let s = state.withLock { $0 }
        if ContinuousClock.now - s.tick > maxSilence { return (false, "claim loop stalled") }
        if !s.databaseOK { return (false, "database unreachable") }
        return (true, "ok")
    }
}

/// `/metrics` (Prometheus text) and `/healthz` (200 or 503) on METRICS_ADDR,
/// served by `TinyHTTPServer` on a thread of its own. Runs until graceful
/// shutdown (or its task is cancelled).
public struct HealthServer: Service, Sendable {
    let logger: Logger
    let host: String
    let port: UInt16
    let health: HealthState
    let maxSilence: Duration
    let metricsText: @Sendable () -> [UInt8]

    /// `address` is `host:port` (IPv4); throws `ConfigurationError` naming METRICS_ADDR otherwise.
    public init(address: String, health: HealthState, maxSilence: Duration, logger: Logger,
                metricsText: @escaping @Sendable () -> [UInt8]) throws {
        self.logger = logger
        let parts = address.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else {
            throw ConfigurationError("METRICS_ADDR", "'\(address)' is not host:port")
        }
        host = String(parts[0])
        self.port = port
        self.health = health
        self.maxSilence = maxSilence
        self.metricsText = metricsText
    }

    public func run() async throws {
        let server = try TinyHTTPServer(host: host, port: port) { [metricsText, health, maxSilence] method, path in
            guard method == "GET" || method == "HEAD" else {
                return .init(status: 405, body: Array("only GET\n".utf8))
            }
            switch path {
            case "/metrics":
                return .init(status: 200, contentType: "text/plain; version=0.0.4", body: metricsText())
            case "/healthz":
                let h = health.healthy(maxSilence: maxSilence)
                return .init(status: h.ok ? 200 : 503, body: Array((h.reason + "\n").utf8))
            default:
                return .init(status: 404, body: Array("not found: /metrics and /healthz are served\n".utf8))
            }
        }
        try server.start()
        logger.info("serving /metrics and /healthz", metadata: ["address": "\(host):\(port)"])
        // Serve until graceful shutdown or cancellation, then stop the thread.
        try? await gracefulShutdown() // returns at graceful shutdown, throws when cancelled
        // Joining may wait for a request in progress (up to its socket timeouts): not on the pool.
        _ = try? await onDedicatedThread { server.stop() }
        logger.debug("health server stopped")
    }
}
