import Foundation
import RunnerCore
import Testing

/// Helpers of the containment tests: fixtures copied into place, processes
/// found by a marker in their argv, and a supervisor in the background.
enum Containment {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    /// Copies fixture `name` to `<root>/bin/<as>` (executable); returns its path.
    static func install(_ name: String, in root: String, as target: String = "cline", prefix: String = "") throws -> String {
        let dir = root + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var text = try String(contentsOfFile: fixtures + "/" + name, encoding: .utf8)
        if !prefix.isEmpty, let nl = text.firstIndex(of: "\n") {
            text = String(text[...nl]) + prefix + "\n" + text[text.index(after: nl)...]
        }
        let path = dir + "/" + target
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// Pids of the processes whose argv contains `marker` (read from /proc).
    static func processes(with marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> Int32? in
            guard let pid = Int32(name), pid != getpid(),
                  let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
            return String(decoding: data, as: UTF8.self).contains(marker) ? pid : nil
        }
    }

    /// Waits until `condition` holds, at most `timeout` seconds; false when it never did.
    static func eventually(_ timeout: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// The database server's port (the agent tries to reach it).
    static var databasePort: Int {
        let rest = TestEnv.mongoURI.dropFirst("mongodb://".count)
        let hostPort = rest.split(separator: "/").first.map(String.init) ?? ""
        return Int(hostPort.split(separator: ":").last ?? "") ?? 27017
    }

    /// `agent-runner run` in the background with the harness's environment plus `env`.
    static func startSupervisor(_ h: Harness, _ env: [String: String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnv.binDir + "/agent-runner")
        p.arguments = ["run"]
        p.environment = h.environment(env)
        p.currentDirectoryURL = URL(fileURLWithPath: h.root)
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        return p
    }
}
