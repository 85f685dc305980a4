import Foundation
import RunnerCore
import Testing

/// Helpers of the containment tests: fixtures copied into place, processes
/// found by a marker in their argv, and the database's port.
enum Containment {
    /// Copies fixture `name` to `<root>/bin/<as>` (executable); returns its path.
    static func install(_ name: String, in root: String, as target: String = "cline", prefix: String = "") throws -> String {
        let dir = root + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var text = try String(contentsOfFile: TestEnv.fixtures + "/" + name, encoding: .utf8)
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

    /// Whether a connection waits on listening socket `fd` (a non-blocking accept).
    static func pendingConnection(_ fd: Int32) -> Bool {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let client = accept(fd, nil, nil)
        if client >= 0 { close(client) }
        return client >= 0
    }

    /// The database server's port (the agent tries to reach it).
    static var databasePort: Int {
        let rest = TestEnv.mongoURI.dropFirst("mongodb://".count)
        let hostPort = rest.split(separator: "/").first.map(String.init) ?? ""
        return Int(hostPort.split(separator: ":").last ?? "") ?? 27017
    }
}

/// A fake Cline in one of its modes and the fake OpenAI-compatible provider
/// on loopback it calls, logging each request: a job's agent and model, for
/// tests that run jobs through the supervisor.
struct ClineRig {
    let cline: String
    let requests: String
    let provider: FixtureServer

    init(_ h: Harness, mode: String) async throws {
        cline = try Containment.install("fake_cline.py", in: h.root, prefix: "MODE = \"\(mode)\"")
        requests = h.root + "/provider.jsonl"
        provider = try await FixtureServer("fake_provider.py", ["ok", requests])
    }

    /// The settings that run only the fake Cline, against the provider with `model`.
    func env(model: String, attempts: Int, _ extra: [String: String] = [:]) -> [String: String] {
        ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "\(attempts)",
         "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_MODEL": model,
         "CLINE_API_KEY": ContainmentTests.realKey].merging(extra) { $1 }
    }

    func stop() { provider.stop() }
}
