import Foundation
import Logging
import RunnerCore
@testable import SupervisorKit
import Testing

/// The hand-written HTTP responder behind `/metrics` and `/healthz`: routes,
/// methods, malformed requests, a silent client, and a clean stop.
@Suite struct HealthServerTests {
    @Test func servesTheTwoRoutesAndRefusesTheRest() async throws {
        let port = freePort()
        let health = HealthState()
        let server = try HealthServer(address: "127.0.0.1:\(port)", health: health, maxSilence: .seconds(60),
                                      logger: Logger(label: "test")) { Array("agent_runner_demo 1\n".utf8) }
        let task = Task { try await server.run() }
        let base = "http://127.0.0.1:\(port)"
        var up = false
        for _ in 0..<50 where !up {
            up = (try? await httpRequest(base + "/healthz"))?.status == 200
            if !up { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(up)
        #expect(try await httpRequest(base + "/healthz").body == "ok")
        let metrics = try await httpRequest(base + "/metrics?x=1")
        #expect(metrics.status == 200 && metrics.body == "agent_runner_demo 1")
        #expect(try await httpRequest(base + "/nope").status == 404)
        #expect(try await httpRequest(base + "/metrics", ["-X", "POST", "-d", "x"]).status == 405)
        health.database(ok: false)
        let down = try await httpRequest(base + "/healthz")
        #expect(down.status == 503 && down.body == "database unreachable")

        // A malformed request line gets 400; a client that connects and says
        // nothing is dropped after its read timeout and does not stop service.
        let probe = """
        import socket, sys
        port = int(sys.argv[1])
        bad = socket.create_connection(("127.0.0.1", port)); bad.sendall(b"HELLO\\r\\n\\r\\n")
        print(bad.recv(100).split(b"\\r\\n")[0].decode())
        silent = socket.create_connection(("127.0.0.1", port))
        ok = socket.create_connection(("127.0.0.1", port)); ok.sendall(b"GET /healthz HTTP/1.1\\r\\n\\r\\n")
        print(ok.recv(100).split(b"\\r\\n")[0].decode())
        """
        let r = try await runProcess("/usr/bin/python3", ["-c", probe, "\(port)"], timeout: 20)
        #expect(r.stdout.split(separator: "\n") == ["HTTP/1.1 400 Bad Request", "HTTP/1.1 503 Service Unavailable"])

        task.cancel()
        _ = try? await task.value
        #expect(try await httpRequest(base + "/healthz").status == 0, "the port is closed once the server stopped")
    }

    @Test func anAddressInUseIsAClearError() async throws {
        let port = freePort()
        let first = try HealthServer(address: "127.0.0.1:\(port)", health: HealthState(), maxSilence: .seconds(60),
                                     logger: Logger(label: "test")) { [] }
        let task = Task { try await first.run() }
        defer { task.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        let second = try HealthServer(address: "127.0.0.1:\(port)", health: HealthState(), maxSilence: .seconds(60),
                                      logger: Logger(label: "test")) { [] }
        await #expect(throws: Errno.self) { try await second.run() }
        #expect(throws: ConfigurationError.self) {
            try HealthServer(address: "localhost", health: HealthState(), maxSilence: .seconds(1),
                             logger: Logger(label: "test")) { [] }
        }
    }
}
