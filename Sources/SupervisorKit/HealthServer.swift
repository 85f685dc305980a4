import FlyingFox
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
/// served by FlyingFox. Runs until its task is cancelled.
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
        let server = HTTPServer(address: try .inet(ip4: host, port: port), logger: .disabled)
        await server.appendRoute("GET /metrics") { [metricsText] _ in
            HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: Data(metricsText()))
        }
        await server.appendRoute("GET /healthz") { [health, maxSilence] _ in
            let h = health.healthy(maxSilence: maxSilence)
            return HTTPResponse(statusCode: h.ok ? .ok : .serviceUnavailable, body: Data((h.reason + "\n").utf8))
        }
        logger.info("serving /metrics and /healthz", metadata: ["address": "\(host):\(port)"])
        // On graceful shutdown the server task is cancelled: a clean stop, not a failure.
        do {
            try await cancelWhenGracefulShutdown { try await server.run() }
        } catch where Task.isCancelled || error is CancellationError {
            logger.debug("health server stopped")
        } catch {
            if Task.isShuttingDownGracefully { return }
            throw error
        }
    }
}
