#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import RunnerCore
@testable import SupervisorKit
import Testing

/// Diagnostics are never dropped: the egress proxy's stderr reaches the log,
/// redacted, for as long as the proxy runs; a workspace that cannot be
/// removed is logged.
@Suite struct DiagnosticsTests {
    static let secret = "sk-test-" + "Secret0123456789abcdef"

    @Test func theProxysStderrIsLoggedRedactedBeforeAndAfterItIsReady() async throws {
        let dir = TestEnv.tempDir("proxy-stderr")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A stand-in proxy: a diagnostic, ready, then another diagnostic once told to go on.
        let go = dir + "/go"
        let script = dir + "/proxy"
        try writeExecutable(script, """
        #!/bin/sh
        head -n 1 > /dev/null
        echo "starting with \(Self.secret)" >&2
        echo '{"type":"ready"}'
        while [ ! -e \(go) ]; do sleep 0.05; done
        echo "later: \(Self.secret) failed" >&2
        """)
        let log = CapturedLog()
        let ticket = EgressProxyTicket(socketPath: dir + "/sock", rules: [], provider: nil, providerKey: nil, gemini: nil)
        let proxy = try await EgressProxyProcess.start(ticket: ticket, logger: log.logger,
                                                       redactor: Locked(Redactor(secrets: [Self.secret])), executable: script)
        FileManager.default.createFile(atPath: go, contents: nil)
        await proxy.relay { _ in }
        proxy.stop()
        let lines = log.lines.filter { $0.contains("egress proxy: ") }
        #expect(lines.contains { $0.contains("starting with") }, "\(log.lines)")
        #expect(lines.contains { $0.contains("later: ") && $0.contains("failed") }, "after ready: \(log.lines)")
        #expect(!log.lines.contains { $0.contains(Self.secret) }, "\(log.lines)")
    }

    static let canPin: Bool = geteuid() == 0 && access("/usr/bin/chattr", X_OK) == 0

    @Test(.enabled(if: canPin, "needs root and chattr"))
    func aWorkspaceThatCannotBeRemovedIsLogged() async throws {
        let dir = TestEnv.tempDir("workspace-clean")
        let pinned = dir + "/pinned"
        FileManager.default.createFile(atPath: pinned, contents: Data("x".utf8))
        let r = try await runProcess("/usr/bin/chattr", ["+i", pinned])
        try #require(r.status == 0, "chattr +i: \(r.stderr) (the file system may not support it)")
        defer {
            _ = system("/usr/bin/chattr -i '\(pinned)' 2>/dev/null")
            try? FileManager.default.removeItem(atPath: dir)
        }
        let log = CapturedLog()
        OutcomeWriter.removeWorkspace(dir, logger: log.logger)
        #expect(log.lines.contains { $0.hasPrefix("warning cannot remove the workspace") && $0.contains(dir) }, "\(log.lines)")
        // One already gone is not a failure.
        let gone = LogCount(log)
        OutcomeWriter.removeWorkspace(dir + "-never-made", logger: log.logger)
        #expect(gone.unchanged)
    }

    struct LogCount {
        let log: CapturedLog
        let before: Int
        init(_ log: CapturedLog) { self.log = log; before = log.lines.count }
        var unchanged: Bool { log.lines.count == before }
    }
}
