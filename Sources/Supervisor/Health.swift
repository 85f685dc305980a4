import ArgumentParser
import Foundation
import RunnerCore
import SupervisorKit

/// `agent-runner health`: the image's HEALTHCHECK. With METRICS_ADDR set it
/// asks the running supervisor's `/healthz` (its claim loop turns and its
/// database answers); without, it checks that the configured database answers
/// a ping. Exit 0 healthy, 1 not (the reason on stderr), 78 bad configuration.
struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exit 0 when the supervisor's /healthz (METRICS_ADDR) answers 200, or else the database answers a ping.")
    @OptionGroup var common: CommonOptions

    func run() async throws {
        let config = try common.configuration()
        if let address = config.metricsAddress {
            let answer: (status: Int, body: String)
            do {
                answer = try await onDedicatedThread { try HealthProbe.get(address: address) }
            } catch let e as ConfigurationError {
                throw fail("\(e)", code: RunnerConfiguration.exitStatus)
            } catch {
                throw fail("unhealthy: /healthz on \(address): \(error)")
            }
            let reason = answer.body.trimmingCharacters(in: .whitespacesAndNewlines)
            guard answer.status == 200 else { throw fail("unhealthy: /healthz answered \(answer.status): \(reason)") }
            print("healthy: /healthz on \(address): \(reason)")
        } else {
            do {
                let server = try await common.store(config).ping()
                print("healthy: database reachable, server \(server) (METRICS_ADDR unset: the claim loop is not checked)")
            } catch {
                throw fail("unhealthy: database: \(error)")
            }
        }
    }
}
