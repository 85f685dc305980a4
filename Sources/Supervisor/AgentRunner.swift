import ArgumentParser
import Foundation
import JobStore
import Logging
import Metrics
import Prometheus
import RunnerCore
import ServiceLifecycle
import SupervisorKit

/// `agent-runner`: the daemon (`run`, the default) and operator subcommands.
@main
struct AgentRunner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent-runner",
        abstract: "Claims Architex jobs from MongoDB and turns their architectures into Git repositories.",
        version: RunnerVersion.line,
        subcommands: [Run.self, Seed.self, Jobs.self, Show.self, Logs.self, Events.self, Retry.self, Cancel.self, Doctor.self,
                      Health.self,
                      BenchClaim.self, BenchBSON.self, DashboardLauncher.self],
        defaultSubcommand: Run.self)
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Read KEY=VALUE settings from this file (default: ./.env when present).")
    var envFile: String?

    /// The validated configuration, or exit 78 naming the bad variable.
    func configuration() throws -> RunnerConfiguration {
        do {
            return try RunnerConfiguration.load(envFile: envFile)
        } catch let e as ConfigurationError {
            RunnerConfiguration.report("\(e)", program: "agent-runner")
            throw ExitCode(RunnerConfiguration.exitStatus)
        }
    }

    /// A store connected to the configured database (exit 69 when impossible).
    func store(_ config: RunnerConfiguration) throws -> JobStore {
        do {
            return JobStore(pool: try MongoPool(uri: config.mongoURI, databaseName: config.databaseName),
                            logCap: config.logCap)
        } catch {
            RunnerConfiguration.report("configuration error: MONGODB_URI: \(error)", program: "agent-runner")
            throw ExitCode(RunnerConfiguration.exitStatus)
        }
    }
}

/// Prints a one-line error and exits non-zero.
func fail(_ message: String, code: Int32 = 1) -> ExitCode {
    FileHandle.standardError.write(Data("agent-runner: \(message)\n".utf8))
    return ExitCode(code)
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the supervisor daemon.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Child slots (overrides RUNNER_CONCURRENCY).") var concurrency: Int?
    @Flag(help: "Exit 0 once nothing is claimable and no job runs.") var exitWhenIdle = false

    func run() async throws {
        // A child that closes its stdin early must not kill the supervisor
        // with SIGPIPE: the write fails with EPIPE instead.
        signal(SIGPIPE, SIG_IGN)
        var config = try common.configuration()
        if let concurrency {
            guard (1...256).contains(concurrency) else { throw fail("--concurrency must be 1...256", code: RunnerConfiguration.exitStatus) }
            config.concurrency = concurrency
        }
        LogSetup.bootstrap(config)
        let logger = Logger(label: "agent-runner")
        if !config.child.sandboxEnforced { logger.warning("SANDBOX=off: job children run UNCONFINED (development only)") }
        guard let childPath = ChildLocator.path(config) else {
            throw fail("cannot find agent-runner-job; set AGENT_RUNNER_JOB_PATH", code: 69)
        }
        let store = try common.store(config)
        do {
            let version = try await Startup.connect(store, eventsTTLDays: config.eventsTTLDays, logger: logger)
            logger.info("database reachable", metadata: ["server": "\(version)", "db": "\(config.databaseName)"])
        } catch {
            if let e = error as? MongoError, !e.isOutage {
                throw fail("the database rejected \(e.operation): \(e.message) (\(e.kind))", code: 69)
            }
            throw fail("cannot reach the database: \(error)", code: 69)
        }
        let supervisor = Supervisor(config: config, store: store, childPath: childPath, logger: logger,
                                    exitWhenIdle: exitWhenIdle)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: supervisor, successTerminationBehavior: .gracefullyShutdownGroup)]
        if let address = config.metricsAddress {
            let registry = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            RunnerMetrics.registerAll(slots: config.concurrency, provider: config.child.clineProvider?.kind.rawValue)
            do {
                let server = try HealthServer(
                    address: address, health: supervisor.health,
                    maxSilence: .seconds(Supervisor.maxLoopInterval(config) * 2 + 10), logger: logger,
                    metricsText: { var out: [UInt8] = []; registry.emit(into: &out); return out })
                services.append(.init(service: server))
            } catch let e as ConfigurationError {
                throw fail("\(e)", code: RunnerConfiguration.exitStatus)
            }
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch let failure as SupervisorFailure {
            throw fail(failure.message, code: 69)
        }
    }
}

/// Start-up checks: reach the database (bounded retries) and create indexes.
enum Startup {
    static func connect(_ store: JobStore, eventsTTLDays: Int, logger: Logger) async throws -> String {
        var lastError: Error?
        for attempt in 1...5 {
            do {
                let version = try await store.ping()
                try await store.ensureIndexes()
                try await store.ensureEventIndexes(ttlDays: eventsTTLDays)
                return version
            } catch {
                lastError = error
                // A rejection (not an outage) fails the same way every time.
                if let e = error as? MongoError, !e.isOutage { throw error }
                logger.warning("database not reachable yet", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                try await Task.sleep(for: .seconds(Double(attempt)))
            }
        }
        throw lastError!
    }
}

