import Foundation
import RunnerCore
import Testing

/// The package's target graph keeps the job child's blocking code (libcurl,
/// libgit2, `poll`, `Thread.sleep`) out of every process that runs Swift
/// concurrency for the database: the `Child*` targets are reachable only from
/// the `JobChild` executable target and from tests (docs/architecture.md,
/// Processes). Read from `swift package dump-package`, so a new dependency in
/// Package.swift fails here before it ships. `make` also builds with
/// `--explicit-target-dependency-import-check error`; the second test repeats
/// that check for a plain `swift build`.
@Suite struct ModuleGraphTests {
    static let childOnly: Set<String> = ["ChildGeneration", "ChildPublishing", "ChildEgressProxy", "ChildHTTP"]
    static var root: String { TestEnv.repoRoot }
    static let neverChild = ["Supervisor", "SupervisorKit", "JobStore", "DashboardKit", "Dashboard", "RunnerCore", "Sandbox"]

    /// Target name → the names of the package's own targets it depends on.
    static func targetGraph() async throws -> (graph: [String: [String]], testTargets: Set<String>) {
        // A scratch path of its own: the test run holds the lock on .build.
        let scratch = TestEnv.tempDir("dump-package")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let r = try await runProcess("/usr/bin/env", ["swift", "package", "--scratch-path", scratch, "dump-package"],
                                     cwd: Self.root)
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
                "the job child links all of them")
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

    /// The package's own modules a target's sources import (`import X`,
    /// `@testable import X`, `@_implementationOnly import X`); nil for a
    /// target without Swift sources (C and system-library targets).
    static func imports(of target: String, testTarget: Bool, among modules: Set<String>) throws -> Set<String>? {
        let dir = Self.root + (testTarget ? "/Tests/" : "/Sources/") + target
        guard let walker = FileManager.default.enumerator(atPath: dir) else { return nil }
        var found: Set<String> = [], swiftFiles = 0
        for case let rel as String in walker where rel.hasSuffix(".swift") {
            swiftFiles += 1
            for line in try String(contentsOfFile: dir + "/" + rel, encoding: .utf8).split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                guard let i = words.firstIndex(of: "import"), i + 1 < words.count,
                      words[..<i].allSatisfy({ $0.hasPrefix("@") }) else { continue }
                if modules.contains(words[i + 1]) { found.insert(words[i + 1]) }
            }
        }
        return swiftFiles == 0 ? nil : found
    }

    /// A Swift target imports only package modules it depends on (directly or
    /// not), so `import ChildGeneration` in a supervisor module fails here even
    /// when the build happened to find the module; and it imports every
    /// package module it declares (no dependency nothing uses).
    @Test func everyTargetImportsWhatItDeclaresAndNothingElse() async throws {
        let (graph, tests) = try await Self.targetGraph()
        let modules = Set(graph.keys)
        var checked = 0
        for name in graph.keys.sorted() {
            guard let imported = try Self.imports(of: name, testTarget: tests.contains(name), among: modules) else { continue }
            let undeclared = imported.subtracting(Self.closure(of: name, in: graph)).subtracting([name])
            #expect(undeclared.isEmpty, "\(name) imports \(undeclared.sorted()) without depending on it")
            let unused = Set(graph[name] ?? []).subtracting(imported)
            #expect(unused.isEmpty, "\(name) declares \(unused.sorted()) but imports none of it")
            checked += 1
        }
        #expect(checked >= 10, "the scan found the package's Swift targets")
        // ChildHTTP (libcurl) is used through ChildGeneration and ChildEgressProxy.
        #expect(try Self.imports(of: "JobChild", testTarget: false, among: modules)?
            .isSuperset(of: Self.childOnly.subtracting(["ChildHTTP"])) == true)
    }
}
