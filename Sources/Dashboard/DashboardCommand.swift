import ArgumentParser
import DashboardKit
import Foundation
import JobStore
import Logging
import RunnerCore
import SupervisorKit

/// `agent-runner-dashboard` (also started as `agent-runner dashboard`): the
/// operators' web dashboard over the runner's database.
@main
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-runner dashboard",
        abstract: "Serve the operators' web dashboard (sign-in with DASHBOARD_TOKEN).",
        discussion: "Reads the runner's configuration (.env or --env-file, then the environment). Prints "
            + "'listening on http://HOST:PORT' on stdout once it serves (port 0 picks a free one).")

    @Option(help: "Address to listen on, HOST:PORT (IPv6 as [ADDR]:PORT).") var listen = "127.0.0.1:8090"
    @Option(name: .long, help: "Read KEY=VALUE settings from this file (default: ./.env when present).")
    var envFile: String?

    func run() async throws {
        // A browser that goes away mid-response must not kill the server.
        signal(SIGPIPE, SIG_IGN)
        let config: RunnerConfiguration
        let token: String
        do {
            config = try RunnerConfiguration.load(envFile: envFile)
            token = try config.requiredDashboardToken()
        } catch let e as ConfigurationError {
            RunnerConfiguration.report("\(e)", program: "agent-runner dashboard")
            throw ExitCode(RunnerConfiguration.exitStatus)
        }
        guard let (host, port) = Self.parseListen(listen) else {
            RunnerConfiguration.report("--listen must be HOST:PORT, got '\(listen)'", program: "agent-runner dashboard")
            throw ExitCode(RunnerConfiguration.exitStatus)
        }
        LogSetup.bootstrap(config)
        let logger = Logger(label: "agent-runner-dashboard")
        let store: JobStore
        do {
            store = JobStore(pool: try MongoPool(uri: config.mongoURI, databaseName: config.databaseName,
                                                 appName: "agent-runner-dashboard"), logCap: config.logCap)
        } catch {
            RunnerConfiguration.report("configuration error: MONGODB_URI: \(error)", program: "agent-runner dashboard")
            throw ExitCode(RunnerConfiguration.exitStatus)
        }
        let dashboard = Dashboard(store: store, token: token, leaseSeconds: config.leaseSeconds,
                                  pollSeconds: config.pollSeconds, logger: logger, spend: config.spend)
        try await dashboard.run(host: host, port: port) { bound in
            let shownHost = host.contains(":") ? "[\(host)]" : host
            FileHandle.standardOutput.write(Data("listening on http://\(shownHost):\(bound)\n".utf8))
            logger.info("dashboard listening", metadata: ["address": "\(shownHost):\(bound)"])
        }
    }

    /// "127.0.0.1:8090", "[::1]:8090", "localhost:0" → host and port.
    static func parseListen(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        return (host, port)
    }
}
