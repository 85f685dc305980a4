import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// A lapsed lease counts as an attempt: a job whose lease keeps lapsing is
/// claimed again at most until `maxAttempts`, then fails `lease_lost` with
/// the history in `errors`, and never loops.
@Suite(.serialized) struct LeaseLapseTests {
    let queue = QueueFixture()

    /// Makes job `id` look held by a runner that died: running, its lease expired.
    func lapse(_ h: Harness, _ id: String, attempts: Int, maxAttempts: Int? = nil) async throws {
        var set: [String: JSONValue] = [
            "status": "running", "stage": "generating", "attempts": .int(Int64(attempts)),
            "lease": ["owner": "dead-host:1:x", "token": .string(UUID().uuidString),
                      "expiresAt": .date(Date().addingTimeInterval(-5))]]
        if let maxAttempts { set["maxAttempts"] = .int(Int64(maxAttempts)) }
        let update: JSONValue = ["$set": .object(set)]
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(id)], update: update)
        }
    }

    func errors(_ job: JSONValue) -> [JSONValue] { job["errors"]?.arrayValue ?? [] }

    @Test func aLapsedJobIsClaimedAgainUntilItsLastAttemptThenFailsLeaseLost() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let p = try await h.store.insertProject(name: "L", repoURL: nil)
        let id = try await h.store.insertJob(projectId: p, spec: tinySpec)
        let failed = Locked<[LeaseLapse]>([])
        let record: @Sendable (LeaseLapse) -> Void = { lapse in failed.withLock { $0.append(lapse) } }
        // Attempt 1 lapsed, of 2: claimed again, the lapse recorded.
        try await lapse(h, id, attempts: 1)
        let again = try #require(try await h.store.claim(owner: "r2", leaseSeconds: 3600, maxAttempts: 2, failedLapsed: record))
        #expect(again.idText == id && again.attempt == 2)
        var job = try await h.job(id)
        #expect(job["status"]?.stringValue == "running" && job["attempts"]?.intValue == 2)
        #expect(errors(job).count == 1)
        #expect(errors(job).first?["code"]?.stringValue == "lease_lost" && errors(job).first?["retryable"]?.boolValue == true)
        #expect(errors(job).first?["attempt"]?.intValue == 1)
        #expect(failed.withLock { $0.isEmpty })
        // Attempt 2 lapses too: the job fails instead of running a third time.
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(id)],
                                     update: ["$set": ["lease.expiresAt": .date(Date().addingTimeInterval(-1))]])
        }
        #expect(try await h.store.claim(owner: "r3", leaseSeconds: 3600, maxAttempts: 2, failedLapsed: record) == nil)
        job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed" && job["stage"]?.stringValue == "finished", "\(job)")
        #expect(job["attempts"]?.intValue == 2)
        #expect(job["error"]?["code"]?.stringValue == "lease_lost" && job["error"]?["retryable"]?.boolValue == false)
        #expect(job["lease"] == nil && job["finishedAt"] != nil)
        #expect(errors(job).map { $0["attempt"]?.intValue } == [1, 2])
        #expect(errors(job).allSatisfy { $0["code"]?.stringValue == "lease_lost" })
        #expect(job["logs"]?.arrayValue?.filter { $0.stringValue?.hasPrefix("[lease_lost]") == true }.count == 2)
        #expect(failed.withLock { $0.map(\.idText) } == [id])
        // Nothing claims it any more.
        #expect(try await h.store.claim(owner: "r4", leaseSeconds: 3600, maxAttempts: 2) == nil)
    }

    /// The job's own `maxAttempts` wins over JOB_MAX_ATTEMPTS, and a lapsed
    /// job at its limit does not hide the next claimable one.
    @Test func theJobsOwnMaxAttemptsCountsAndTheClaimGoesOn() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let p1 = try await h.store.insertProject(name: "A", repoURL: nil)
        let p2 = try await h.store.insertProject(name: "B", repoURL: nil)
        let lapsed = try await h.store.insertJob(projectId: p1, spec: tinySpec)
        let next = try await h.store.insertJob(projectId: p2, spec: tinySpec)
        try await lapse(h, lapsed, attempts: 1, maxAttempts: 1)
        let claimed = try #require(try await h.store.claim(owner: "r", leaseSeconds: 3600, maxAttempts: 5))
        #expect(claimed.idText == next)
        let job = try await h.job(lapsed)
        #expect(job["status"]?.stringValue == "failed" && job["error"]?["code"]?.stringValue == "lease_lost")
    }

    /// A cancel requested of a job whose lease lapsed at its last attempt
    /// is honoured: `cancelled`, no `error`, the lapse in `errors`.
    @Test func aCancelledJobWhoseLastLeaseLapsedEndsCancelled() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let p = try await h.store.insertProject(name: "C", repoURL: nil)
        let id = try await h.store.insertJob(projectId: p, spec: tinySpec)
        try await lapse(h, id, attempts: 2)
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionTestOps.setField(coll, id: id, field: "cancelRequested", value: true)
        }
        #expect(try await h.store.claim(owner: "r", leaseSeconds: 3600, maxAttempts: 2) == nil)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "cancelled" && job["error"] == nil && job["attempts"]?.intValue == 2, "\(job)")
        #expect(errors(job).map { $0["code"]?.stringValue } == ["lease_lost"])
        #expect(job["logs"]?.arrayValue?.last?.stringValue == "cancelled after its lease lapsed")
    }

    /// End to end: a supervisor killed (SIGKILL) mid-job, every time. With
    /// JOB_MAX_ATTEMPTS=2 the job runs twice, and the third supervisor fails
    /// it `lease_lost` instead of running it again.
    @Test func aJobWhoseRunnerKeepsDyingFailsAfterMaxAttempts() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        // An agent that never finishes: each attempt holds the job until its runner dies.
        let bin = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\nwhile true; do sleep 0.2; done\n"
            .write(toFile: bin + "/cline", atomically: true, encoding: .utf8)
        chmod(bin + "/cline", 0o755)
        let id = try await h.seed(tinySpec)
        let env = ["CLINE_CMD": bin + "/cline", "CLINE_ENABLED": "true", "GENERATORS": "cline,scaffold",
                   "LEASE_SECONDS": "4", "JOB_MAX_ATTEMPTS": "2"]
        // Each supervisor is killed once it runs the agent (a loaded machine may
        // lapse a lease on its own too: that counts the same).
        var endedEarly = false
        for _ in 1...2 {
            let p = try h.startSupervisor(env)
            defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
            let owner = ":\(p.processIdentifier):"
            var ended = false
            try await queue.waitFor("the job to run", timeout: 90) {
                let job = try await h.job(id)
                ended = job["status"]?.stringValue == "failed"
                return ended || (job["status"]?.stringValue == "running" && job["stage"]?.stringValue == "generating"
                    && job["lease"]?["owner"]?.stringValue?.contains(owner) == true)
            }
            kill(p.processIdentifier, SIGKILL)
            _ = try await queue.waitExit(p)
            if ended { endedEarly = true; break }
            try await Task.sleep(for: .seconds(5)) // its lease lapses
        }
        let log = h.root + "/third.log"
        let third = try h.startSupervisor(env, args: ["--exit-when-idle"], log: log)
        defer { if third.isRunning { kill(third.processIdentifier, SIGKILL) } }
        #expect(try await queue.waitExit(third, timeout: 60) == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job)")
        #expect(job["error"]?["code"]?.stringValue == "lease_lost" && job["error"]?["retryable"]?.boolValue == false)
        #expect(job["attempts"]?.intValue == 2, "never a third attempt")
        #expect(errors(job).map { $0["attempt"]?.intValue } == [1, 2], "\(errors(job))")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if !endedEarly { #expect(text.contains("its lease lapsed at its last attempt"), "\(text.suffix(2000))") }
    }

    /// doctor runs the lapsed-lease claim's two writes (claimed again, failed
    /// at maxAttempts) on its scratch collections, and names them when refused.
    @Test func doctorChecksTheLapsedLeaseShapes() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(refusing: ["[lease_lost]"])
        defer { proxy.stop() }
        let r = try await h.agentRunner(["doctor"], env: ["MONGODB_URI": proxy.uri], timeout: 60)
        #expect(r.stdout.contains("fail  database rejects claim of a lapsed lease"), "\(r.stdout)")
        #expect(r.stdout.contains("fail  database rejects claim failing a lapsed lease at maxAttempts"), "\(r.stdout)")
    }
}
