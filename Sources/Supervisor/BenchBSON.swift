import ArgumentParser
import Foundation
import JobStore
import RunnerCore

/// `agent-runner bench-bson`: the BSON conversion cost of the claim, a
/// heartbeat and a log append, builder path against the JSON text path, in
/// process (no database), for `make bench` (hidden from help).
struct BenchBSON: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-bson",
        abstract: "Benchmark only: time BSON conversion of the hot documents and print JSON.",
        shouldDisplay: false)
    @Option(help: "The architecture spec (JSON) the benchmark's job document carries.") var spec: String
    @Option(help: "Log lines per append (the supervisor flushes at most 200).") var lines = 200
    @Option(help: "Conversions per timed round.") var count = 2000

    func run() throws {
        let value = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: spec)))
        print(try BSONBenchmark.run(spec: value, logLines: lines, iterations: count).jsonString)
    }
}
