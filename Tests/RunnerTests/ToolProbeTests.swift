import Foundation
import RunnerCore
import Testing

/// The supervisor links neither libcurl nor libgit2; the doctor's checks that
/// need them run in `agent-runner-job --probe`.
@Suite struct ToolProbeTests {
    @Test func theSupervisorLinksNeitherLibcurlNorLibgit2() async throws {
        let supervisor = try await runProcess("/usr/bin/ldd", [TestEnv.binDir + "/agent-runner"])
        let child = try await runProcess("/usr/bin/ldd", [TestEnv.binDir + "/agent-runner-job"])
        #expect(supervisor.status == 0 && child.status == 0)
        for lib in ["libcurl", "libgit2", "libFoundationNetworking"] {
            #expect(!supervisor.stdout.contains(lib), "agent-runner links \(lib)")
        }
        #expect(child.stdout.contains("libgit2") && child.stdout.contains("libcurl"), "the child does the network work")
    }

    @Test func theProbeResolvesClineAndReportsLibgit2() async throws {
        let dir = TestEnv.tempDir("probe")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cline = dir + "/cline"
        try "#!/bin/sh\necho 1.0\n".write(toFile: cline, atomically: true, encoding: .utf8)
        chmod(cline, 0o755)
        let config = try RunnerConfiguration(environment: ["MONGODB_URI": "mongodb://127.0.0.1:1"])
        func probe(_ request: ToolProbeRequest) async throws -> ProcessResult {
            let path = dir + "/request.json"
            try JSONEncoder().encode(request).write(to: URL(fileURLWithPath: path))
            return try await runProcess("/bin/sh", ["-c", "exec \"$0\" --probe < \"$1\"",
                                                    TestEnv.binDir + "/agent-runner-job", path])
        }
        let found = try await probe(ToolProbeRequest(settings: config.child, clineCommand: cline,
                                                     geminiRoute: GeminiRoute(socketPath: dir + "/nothing.sock", token: "t"), online: false))
        #expect(found.status == 0, "\(found.stderr)")
        let report = try JSONDecoder().decode(ToolProbeReport.self, from: Data(found.stdout.utf8))
        #expect(report.clinePath == cline)
        #expect(!report.geminiChecked && report.geminiProblem == nil, "no network call without --online")
        #expect(report.libgit2.range(of: #"^\d+\.\d+\.\d+ \("#, options: .regularExpression) != nil, "\(report.libgit2)")

        let missing = try await probe(ToolProbeRequest(settings: config.child, clineCommand: dir + "/nothing",
                                                       geminiRoute: nil, online: true))
        let none = try JSONDecoder().decode(ToolProbeReport.self, from: Data(missing.stdout.utf8))
        #expect(none.clinePath == nil && !none.geminiChecked)

        let garbage = try await runProcess("/bin/sh", ["-c", "echo nonsense | exec \"$0\" --probe",
                                                       TestEnv.binDir + "/agent-runner-job"])
        #expect(garbage.status == 2 && garbage.stderr.contains("unreadable request"))
    }
}
