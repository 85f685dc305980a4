import ArgumentParser
import Foundation
import JobStore
import RunnerCore

struct Seed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a project and a pending job; print the job id.")
    @OptionGroup var common: CommonOptions
    @Option(help: "An architecture_spec JSON file (default: a small built-in example).") var spec: String?
    @Option(help: "The project's repository URL (https://, file:// or a local path).") var repo: String?
    @Option(help: "The project's name.") var project = "Demo project"
    @Option(help: "Job priority (higher first).") var priority: Int?

    func run() async throws {
        let config = try common.configuration()
        let store = try common.store(config)
        let specValue: JSONValue
        if let spec {
            guard let data = FileManager.default.contents(atPath: spec) else { throw fail("cannot read \(spec)") }
            do { specValue = try JSONValue.parse(data) } catch { throw fail("\(spec) is not valid JSON: \(error)") }
        } else {
            specValue = SampleSpec.value
        }
        let projectId = try await store.insertProject(name: project, repoURL: repo)
        print(try await store.insertJob(projectId: projectId, spec: specValue, priority: priority))
    }
}

/// The seed's default architecture: a frontend, an API and a database.
enum SampleSpec {
    static let value: JSONValue = [
        "name": "Sample app", "description": "A web front end, an API and its database.",
        "nodes": [
            ["id": "web", "type": "frontend", "data": ["label": "Web", "framework": "react"]],
            ["id": "api", "type": "backend", "data": ["label": "API", "framework": "fastapi"]],
            ["id": "db", "type": "database", "data": ["label": "Database", "framework": "postgres"]],
        ],
        "edges": [["id": "e1", "source": "web", "target": "api"], ["id": "e2", "source": "api", "target": "db"]],
    ]
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Only jobs with this status.") var status: String?
    @Option(help: "At most this many.") var limit = 50
    @Flag(help: "One JSON document per line.") var json = false

    func run() async throws {
        if let status, !JobFilter.statuses.contains(status) {
            throw fail("--status must be pending, running, done, failed or cancelled")
        }
        let config = try common.configuration()
        let docs = try await common.store(config).jobs(status: status, limit: limit)
        if json { docs.forEach { print($0.jsonString) }; return }
        print(pad("ID", 26) + pad("PROJECT", 26) + pad("STATUS", 10) + pad("STAGE", 12) + pad("ATT", 5) + pad("AGE", 8)
              + pad("GENERATOR", 16) + pad("COST", 10) + "PULL REQUEST")
        for d in docs {
            let job = Job(d)
            let age = job.createdAt.map { Self.age(Date().timeIntervalSince($0)) } ?? "-"
            print(pad(JobStore.idText(job.id), 26) + pad(job.projectRef.map(JobStore.idText) ?? "-", 26)
                  + pad(d["status"]?.stringValue ?? "-", 10) + pad(d["stage"]?.stringValue ?? "-", 12)
                  + pad("\(d["attempts"]?.intValue ?? 0)", 5) + pad(age, 8)
                  + pad(d["metadata"]?["generator"]?.stringValue ?? "-", 16) + pad(Self.cost(d["metadata"]?["usage"]), 10)
                  + (d["metadata"]?["pullRequest"]?["url"]?.stringValue ?? "-"))
        }
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? String(s.prefix(n - 1)) + " " : s + String(repeating: " ", count: n - s.count) }

    /// `metadata.usage.cost` as dollars; `?` when the calls' cost is unknown, `-` without metered calls.
    static func cost(_ usage: JSONValue?) -> String {
        guard let usage, !usage.isNull else { return "-" }
        switch usage["cost"] {
        case .double(let d)?: return UsageTotals.dollars(d)
        case .int(let i)?: return UsageTotals.dollars(Double(i))
        default: return "?"
        }
    }

    static func age(_ s: TimeInterval) -> String {
        s < 120 ? "\(Int(s))s" : s < 7200 ? "\(Int(s / 60))m" : s < 172_800 ? "\(Int(s / 3600))h" : "\(Int(s / 86400))d"
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one job: status, error, metadata.")
    @OptionGroup var common: CommonOptions
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Print the whole document as JSON.") var json = false

    func run() async throws {
        let config = try common.configuration()
        guard let d = try await common.store(config).job(job) else { throw fail("no job with id \(job)") }
        if json { print(d.prettyString); return }
        print("job       \(JobStore.idText(d["_id"] ?? nil))")
        print("project   \(Job(d).projectRef.map(JobStore.idText) ?? "-")")
        print("status    \(d["status"]?.stringValue ?? "-")   stage \(d["stage"]?.stringValue ?? "-")   attempts \(d["attempts"]?.intValue ?? 0)")
        if let e = d["error"], !e.isNull {
            print("error     \(e["code"]?.stringValue ?? "?"): \(e["message"]?.stringValue ?? "")")
        }
        if let m = d["metadata"]?.objectValue {
            for k in m.keys.sorted() { print("metadata  \(k) = \(m[k]!.stringValue ?? m[k]!.jsonString)") }
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a job's log; --follow streams it until the job ends.")
    @OptionGroup var common: CommonOptions
    @Argument(help: "The job id.") var job: String
    @Flag(help: "Keep printing new lines until the job ends.") var follow = false

    func run() async throws {
        let config = try common.configuration()
        let store = try common.store(config)
        var printed = 0
        while true {
            guard let d = try await store.job(job) else { throw fail("no job with id \(job)") }
            let logs = d["logs"]?.arrayValue ?? []
            // The log is capped: if it was trimmed meanwhile, resume at its end.
            if printed > logs.count { printed = 0 }
            for line in logs.dropFirst(printed) { print(line.stringValue ?? line.jsonString) }
            printed = logs.count
            let status = d["status"]?.stringValue ?? ""
            if !follow || JobStatus.isTerminal(status) { return }
            try await Task.sleep(for: .milliseconds(500))
        }
    }
}

struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put a failed or cancelled job back to pending.")
    @OptionGroup var common: CommonOptions
    @Argument(help: "The job id.") var job: String

    func run() async throws {
        try report(try await common.store(try common.configuration()).retryJob(job))
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a pending or running job.")
    @OptionGroup var common: CommonOptions
    @Argument(help: "The job id.") var job: String

    func run() async throws {
        try report(try await common.store(try common.configuration()).cancelJob(job))
    }
}

/// Prints an operator action's message, or fails with it (JobStore holds the logic the dashboard shares).
func report(_ outcome: OperatorOutcome) throws {
    guard case .applied(let message) = outcome else { throw fail(outcome.message) }
    print(message)
}
