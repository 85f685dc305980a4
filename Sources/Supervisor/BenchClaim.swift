import ArgumentParser
import Foundation
import JobStore
import RunnerCore

/// `agent-runner bench-claim`: times the supervisor's real claim against the
/// configured database, for `make bench` (hidden from help). Each claimed job
/// is left `running` under this command's lease, so point it at a throwaway
/// database only.
struct BenchClaim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-claim",
        abstract: "Benchmark only: claim COUNT jobs and print the time of each as JSON.",
        shouldDisplay: false)
    @OptionGroup var common: CommonOptions
    @Option(help: "How many claims to time.") var count = 20

    func run() async throws {
        let config = try common.configuration()
        let store = try common.store(config)
        try await store.ensureIndexes()
        var times: [Double] = []
        var claimed = 0
        for _ in 0..<count {
            let start = ContinuousClock.now
            let job = try await store.claim(owner: "bench-claim", leaseSeconds: 3600)
            times.append((ContinuousClock.now - start) / .milliseconds(1))
            if job != nil { claimed += 1 }
        }
        let out: JSONValue = ["claimed": .int(Int64(claimed)), "ms": .array(times.map { .double(($0 * 100).rounded() / 100) })]
        print(out.jsonString)
    }
}
