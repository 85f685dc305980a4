import Foundation
import RunnerCore
import Testing

/// The package's target graph keeps the job child's blocking code (libcurl,
/// libgit2, `poll`, `Thread.sleep`) out of every process that runs Swift
/// concurrency for the database: `Generation`, `Publishing` and `EgressProxy`
/// are reachable only from the `JobChild` executable target and from tests
/// (docs/architecture.md, Processes). Read from `swift package dump-package`,
/// so a new dependency in Package.swift fails here before it ships.
@Suite struct ModuleGraphTests {
    static let childOnly: Set<String> = ["Generation", "Publishing", "EgressProxy"]
    static let neverChild = ["Supervisor", "SupervisorKit", "JobStore", "DashboardKit", "Dashboard", "RunnerCore", "Sandbox"]

    /// Target name → the names of the package's own targets it depends on.
    static func targetGraph() async throws -> (graph: [String: [String]], testTargets: Set<String>) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        // A scratch path of its own: the test run holds the lock on .build.
        let scratch = TestEnv.tempDir("dump-package")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let r = try await runProcess("/usr/bin/env", ["swift", "package", "--scratch-path", scratch, "dump-package"],
                                     cwd: root)
        try #require(r.status == 0, "swift package dump-package failed: \(r.stderr)")
        let manifest = try JSONValue.parse(Data(r.stdout.utf8))
        var graph: [String: [String]] = [:]
        var tests: Set<String> = []
        for target in manifest["targets"]?.arrayValue ?? [] {
            guard let name = target["name"]?.stringValue else { continue }
            if target["type"]?.stringValue == "test" { tests.insert(name) }
            graph[name] = (target["dependencies"]?.arrayValue ?? []).compactMap {
                ($0["byName"] ?? $0["target"])?.arrayValue?.first?.stringValue
            }
        }
        return (graph, tests)
    }

    /// Every target `name` depends on, directly or not.
    static func closure(of name: String, in graph: [String: [String]]) -> Set<String> {
        var seen: Set<String> = [], stack = graph[name] ?? []
        while let next = stack.popLast() {
            if seen.insert(next).inserted { stack += graph[next] ?? [] }
        }
        return seen
    }

    @Test func childOnlyModulesAreReachableOnlyFromTheJobChild() async throws {
        let (graph, tests) = try await Self.targetGraph()
        try #require(graph["JobChild"] != nil && graph["Supervisor"] != nil, "the manifest lists the executables")
        #expect(Self.closure(of: "JobChild", in: graph).isSuperset(of: Self.childOnly),
                "the job child links all three")
        for name in Self.neverChild {
            try #require(graph[name] != nil, "target \(name) exists")
            let reached = Self.closure(of: name, in: graph).intersection(Self.childOnly)
            #expect(reached.isEmpty, "\(name) must not depend on \(reached.sorted()) (job child only)")
        }
        // And no target added later either, apart from the child and tests.
        for name in graph.keys where name != "JobChild" && !Self.childOnly.contains(name) && !tests.contains(name) {
            let reached = Self.closure(of: name, in: graph).intersection(Self.childOnly)
            #expect(reached.isEmpty, "\(name) depends on \(reached.sorted()), which only agent-runner-job may link")
        }
    }
}
