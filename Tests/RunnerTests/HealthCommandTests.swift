import Foundation
import Logging
import RunnerCore
@testable import SupervisorKit
import Testing

/// `agent-runner health`, the image's HEALTHCHECK: with METRICS_ADDR it asks
/// the running supervisor's `/healthz` (here a real HealthServer whose state
/// the test flips), without it it pings the database.
@Suite struct HealthCommandTests {
    @Test func followsTheSupervisorsHealthzWhenMetricsAddrIsSet() async throws {
        let h = try Harness()
        defer { try? FileManager.default.removeItem(atPath: h.root) }
        let port = freePort()
        let state = HealthState()
        let server = try HealthServer(address: "127.0.0.1:\(port)", health: state, maxSilence: .seconds(60),
                                      logger: Logger(label: "test")) { [] }
        let task = Task { try await server.run() }
        // Listening on every interface: the probe asks loopback.
        let env = ["METRICS_ADDR": "0.0.0.0:\(port)"]
        var healthy = try await h.agentRunner(["health"], env: env)
        for _ in 0..<50 where healthy.status != 0 {
            try await Task.sleep(for: .milliseconds(100))
            healthy = try await h.agentRunner(["health"], env: env)
        }
        #expect(healthy.status == 0, "\(healthy.stderr)")
        #expect(healthy.stdout.contains("healthy: /healthz on 0.0.0.0:\(port): ok"), "\(healthy.stdout)")

        state.database(ok: false)
        let sick = try await h.agentRunner(["health"], env: env)
        #expect(sick.status == 1)
        #expect(sick.stderr.contains("unhealthy: /healthz answered 503: database unreachable"), "\(sick.stderr)")

        task.cancel()
        _ = try? await task.value
        let gone = try await h.agentRunner(["health"], env: env)
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("unhealthy: /healthz on 0.0.0.0:\(port)"), "\(gone.stderr)")

        let bad = try await h.agentRunner(["health"], env: ["METRICS_ADDR": "localhost"])
        #expect(bad.status == 78, "\(bad.stderr)")
    }

    /// A listener on every interface is asked on loopback; any other address as it is.
    @Test func aListenerOnEveryInterfaceIsAskedOnLoopback() {
        #expect(HealthProbe.probeHost("0.0.0.0") == "127.0.0.1")
        #expect(HealthProbe.probeHost("127.0.0.2") == "127.0.0.2")
    }

    @Test func withoutMetricsAddrPingsTheDatabase() async throws {
        let h = try Harness()
        defer { try? FileManager.default.removeItem(atPath: h.root) }
        let up = try await h.agentRunner(["health"])
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("healthy: database reachable"), "\(up.stdout)")

        // Port 1 on loopback: nothing listens there (a free port just closed
        // could be taken by a parallel test).
        let down = try await h.agentRunner(["health"], env: [
            "MONGODB_URI": "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=500"])
        #expect(down.status == 1, "\(down.stdout)\(down.stderr)")
        #expect(down.stderr.contains("unhealthy: database"), "\(down.stderr)")
    }
}
