import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Issue 13, items 8 and 9: portable queries, and database errors reported as
/// what they are. A loopback proxy (Tests/Fixtures/mongo_proxy.py) in front of
/// the test server answers any command holding a given pattern with a command
/// error, as a stricter MongoDB-wire server does.
@Suite(.serialized) struct PortableQueryTests {
    let queue = QueueFixture()

    /// The proxy's URI, rejecting commands that contain any of `patterns`.
    func strictServer(_ patterns: [String]) async throws -> (DatabaseProxy, String) {
        let proxy = try await DatabaseProxy(refusing: patterns)
        return (proxy, proxy.uri)
    }

    /// Every operator the store and the supervisor write is in the portable set.
    @Test func theSourcesUseOnlyPortableOperators() throws {
        let root = URL(fileURLWithPath: TestEnv.repoRoot + "/Sources")
        // Extended JSON type wrappers and the change stream's pipeline stages are not query operators.
        let allowed = JobStore.portableOperators.union(["$oid", "$date", "$numberLong", "$numberInt", "$numberDouble", "$match", "$project"])
        let pattern = try NSRegularExpression(pattern: #""(\$[A-Za-z]+)""#)
        var seen: Set<String> = []
        // The operators' text search (jobs list, dashboard) also matches with `$regex`.
        let search: Set<String> = ["$regex", "$options"]
        for dir in ["JobStore", "SupervisorKit", "Supervisor", "DashboardKit", "Dashboard"] {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: root.path + "/" + dir)) ?? []
            for file in files where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: root.path + "/\(dir)/\(file)", encoding: .utf8)
                for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let op = String(text[Range(m.range(at: 1), in: text)!])
                    seen.insert(op)
                    let ok = allowed.contains(op) || (file == "JobListing.swift" && search.contains(op))
                    #expect(ok, "\(dir)/\(file) uses \(op), which not every MongoDB-wire server implements")
                }
            }
        }
        #expect(seen.contains("$or") && seen.contains("$set"), "the scan found the store's operators: \(seen)")
    }

    /// A server without `$not`, `$ne` and `$nin` still runs jobs.
    @Test func aServerWithoutNotNeAndNinRunsJobs() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (proxy, uri) = try await strictServer(["$not", "$ne", "$nin"])
        defer { proxy.stop() }
        let ids = [try await h.seed(tinySpec), try await h.seed(tinySpec, project: "Second")]
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: ["MONGODB_URI": uri,
                                         "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0)], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        for id in ids { #expect(try await h.job(id)["status"]?.stringValue == "done") }
        #expect(!r.stderr.contains("database unavailable"), "\(r.stderr)")
    }

    /// A claim the server rejects is no outage: exit 69 naming the operation.
    @Test func aRejectedClaimExits69NamingTheOperation() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (proxy, uri) = try await strictServer(["$lt"])
        defer { proxy.stop() }
        _ = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: ["MONGODB_URI": uri,
                                         "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0)], timeout: 60)
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("cannot claim: the database rejects the claim's find"), "\(r.stderr)")
        #expect(r.stderr.contains("is not currently implemented"))
        #expect(!r.stderr.contains("database unavailable"), "a rejection is not an outage: \(r.stderr)")
    }

    /// doctor names each shape the server rejects.
    @Test func doctorNamesTheShapesTheServerRejects() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (proxy, uri) = try await strictServer(["$addToSet"])
        defer { proxy.stop() }
        let r = try await h.agentRunner(["doctor"], env: ["MONGODB_URI": uri], timeout: 60)
        #expect(r.status != 0)
        #expect(r.stdout.contains("fail  database rejects recordSuccess ($addToSet)"), "\(r.stdout)")
        #expect(r.stdout.contains("is not currently implemented"))
        let fine = try await h.agentRunner(["doctor"], timeout: 60)
        #expect(fine.stdout.contains("database accepts all"), "\(fine.stdout)")
        // The scratch collections are gone.
        let names = try await h.store.pool.command(["listCollections": 1, "nameOnly": true])["cursor"]?["firstBatch"]?
            .arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(!names.contains { $0.hasPrefix("doctor_") }, "\(names)")
    }

    /// Item 9: a failed project update after the outcome is written is a
    /// warning naming it, never "cannot record the outcome".
    @Test func aFailedProjectUpdateIsNotReportedAsAMissingOutcome() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let projectId = try #require(try await h.job(id)["projectId"]?.stringValue)
        // jobIds that is not an array: $addToSet fails on it.
        try await h.store.pool.run("projects") { coll in
            try CollectionTestOps.setField(coll, id: projectId, field: "jobIds", value: "not-an-array")
        }
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: ["AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0)])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try await h.job(id)["status"]?.stringValue == "done")
        #expect(!r.stderr.contains("cannot record the outcome"), "\(r.stderr)")
        #expect(r.stderr.contains("the project's lastUpdated and jobIds were not updated"), "\(r.stderr)")
    }
}
