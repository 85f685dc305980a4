import ArgumentParser
import Foundation
import JobStore
import RunnerCore

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a job's event stream (docs/contract.md, Job events); --follow streams it until the job ends.")
    @OptionGroup var common: CommonOptions
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Keep printing new events until the job ends.") var follow = false
    @Option(help: "Only these kinds, comma-separated (stage, command, file_write, …).") var kind: String?
    @Option(help: "Only events after this sequence number.") var after = 0
    @Flag(help: "One JSON event per line (the API's form).") var json = false

    func run() async throws {
        let kinds = kind.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        for k in kinds ?? [] where JobEvent.Kind(rawValue: k) == nil {
            throw fail("--kind must be among " + JobEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let config = try common.configuration()
        let store = try common.store(config)
        var last = max(0, after)
        while true {
            guard let d = try await store.job(job) else { throw fail("no job with id \(job)") }
            let id = JobStore.idText(d["_id"] ?? .string(job))
            // The job's state first: once it has ended, every event is stored.
            let ended = JobStatus.isTerminal(d["status"]?.stringValue)
            while true {
                let page = try await store.events(jobId: id, after: last, kinds: kinds, limit: 1000)
                for e in page.compactMap(JobEvent.init(stored:)) {
                    print(json ? e.apiJSON(jobId: id).jsonString : Self.line(e))
                }
                if let seq = page.last?["seq"]?.intValue { last = Int(clamping: seq) }
                if page.count < 1000 { break }
            }
            if !follow || ended { return }
            // Followed lines reach a pipe (`| grep`) as they come, not at the exit.
            fflush(nil)
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// `SEQ TIME KIND summary`, the summary's control characters shown escaped.
    static func line(_ e: JobEvent) -> String {
        let time = e.at.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true).time(includingFractionalSeconds: true))
        let seq = String(e.seq ?? 0)
        return String(repeating: " ", count: max(0, 6 - seq.count)) + seq + "  " + time + "  "
            + e.kind.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0) + " " + printable(e.summary)
    }

    static func printable(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.flatMap { c -> [Unicode.Scalar] in
            c.properties.generalCategory == .control ? Array("\\u{\(String(c.value, radix: 16))}".unicodeScalars) : [c]
        }))
    }
}
