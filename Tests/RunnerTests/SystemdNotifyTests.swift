import Foundation
import RunnerCore
import Testing

/// A real datagram socket standing in for systemd's notify socket.
@Suite struct SystemdNotifyTests {
    @Test func readyStatusAndStoppingAreSentAndSIGTERMStopsCleanly() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let path = h.root + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnv.binDir + "/agent-runner")
        p.arguments = ["run"]
        p.environment = h.environment(["NOTIFY_SOCKET": path])
        p.currentDirectoryURL = URL(fileURLWithPath: h.root)
        p.standardError = FileHandle.nullDevice
        let exited = Locked<Int32?>(nil)
        p.terminationHandler = { proc in exited.withLock { $0 = proc.terminationStatus } }
        try p.run()

        var messages: [String] = []
        func drain() {
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
                if n <= 0 { break }
                messages.append(String(decoding: buf[0..<n], as: UTF8.self))
            }
        }
        for _ in 0..<100 where !messages.contains(where: { $0.contains("READY=1") }) {
            try await Task.sleep(for: .milliseconds(100)); drain()
        }
        #expect(messages.contains { $0.contains("READY=1") && $0.contains("STATUS=0/2 slots busy") })
        p.terminate() // SIGTERM: graceful stop
        for _ in 0..<100 where exited.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(100))
        }
        drain()
        #expect(messages.contains { $0.contains("STOPPING=1") })
        #expect(exited.withLock { $0 } == 0, "SIGTERM must end in a clean exit 0")
    }
}
