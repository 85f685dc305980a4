import Foundation
@testable import JobStore
import Logging
import RunnerCore
@testable import SupervisorKit
import Testing

/// Issue 15, item 3: the writes that need not happen at once (progress, lock
/// releases, the projects' success records) go for every job a supervisor
/// runs in one request per kind. Requests are counted on the wire by a proxy
/// (Tests/Fixtures/mongo_proxy.py --count) in front of the test server.
@Suite struct WriteBatchTests {
    let queue = QueueFixture()

    /// Three running jobs' stages and lines: one flush, one `update jobs` on
    /// the wire, and each document gets its own stage and its lines in order.
    @Test func severalJobsProgressIsOneRequest() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        var jobs: [ClaimedJob] = []
        for i in 0..<3 {
            let p = try await h.store.insertProject(name: "W\(i)", repoURL: nil)
            _ = try await h.store.insertJob(projectId: p, spec: tinySpec)
            jobs.append(try #require(try await h.store.claim(owner: "test", leaseSeconds: 60)))
        }
        let proxy = try await DatabaseProxy(countingIn: h.root)
        defer { proxy.stop() }
        let store = JobStore(pool: try MongoPool(uri: proxy.uri,
                                                 databaseName: h.dbName), logCap: 1000)
        let logger = Logger(label: "test")
        let leases = LeaseKeeper(store: store, leaseSeconds: 60, pollSeconds: 1, logger: logger)
        let writes = WriteBatcher(store: store, leases: leases, logger: logger)
        let stages: [JobStage] = [.generating, .validating, .committing]
        for (i, job) in jobs.enumerated() {
            await writes.stage(job, .preparing)
            for n in 0..<5 { await writes.add(job, "job \(i) line \(n)") }
            await writes.stage(job, stages[i])
        }
        proxy.resetCount()
        await writes.flush()
        try await Task.sleep(for: .milliseconds(200))
        let sent = proxy.commands(monitoring: false)
        #expect(sent == ["update jobs"], "\(sent)")
        for (i, job) in jobs.enumerated() {
            let doc = try await h.job(job.idText)
            #expect(doc["stage"]?.stringValue == stages[i].rawValue, "\(doc)")
            #expect(doc["logs"]?.arrayValue?.compactMap(\.stringValue) == (0..<5).map { "job \(i) line \($0)" })
        }
        // Nothing pending: the next flush sends nothing, and an outcome finds no line left.
        await writes.flush()
        #expect(await writes.takeLines(jobs[0]).lines.isEmpty)
        try await Task.sleep(for: .milliseconds(200))
        #expect(proxy.commands(monitoring: false) == ["update jobs"], "\(proxy.commands(monitoring: false))")
    }

    /// A batch that matches fewer jobs than it covers makes the lease keeper
    /// read which lease is lost: that job is stopped, the others go on.
    @Test func aLostLeaseInABatchStopsThatJobOnly() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        var jobs: [ClaimedJob] = []
        for i in 0..<2 {
            let p = try await h.store.insertProject(name: "L\(i)", repoURL: nil)
            _ = try await h.store.insertJob(projectId: p, spec: tinySpec)
            jobs.append(try #require(try await h.store.claim(owner: "test", leaseSeconds: 60)))
        }
        // Another runner took the second job over.
        let taken = jobs[1].idText
        try await h.store.pool.run("jobs") { coll in
            try CollectionTestOps.setField(coll, id: taken, field: "lease.token", value: "someone-else")
        }
        let logger = Logger(label: "test")
        let leases = LeaseKeeper(store: h.store, leaseSeconds: 60, pollSeconds: 3600, logger: logger)
        leases.setStreaming(true)
        let controls = [ChildControl(), ChildControl()]
        for (job, control) in zip(jobs, controls) {
            leases.hold(job, lease: LeaseClock(start: .now, leaseSeconds: 60), control: control)
        }
        let keeper = Task { await leases.run(until: { Task.isCancelled }) }
        defer { keeper.cancel() }
        let writes = WriteBatcher(store: h.store, leases: leases, logger: logger)
        for job in jobs { await writes.add(job, "a line") }
        await writes.flush()
        try await queue.waitFor("the lost lease to stop its job", timeout: 10) { controls[1].reason == .leaseLost }
        #expect(controls[0].reason == nil)
        #expect(try await h.job(jobs[0].idText)["logs"] == ["a line"])
        #expect(try await h.job(jobs[1].idText)["logs"] == [])
    }

    /// Locks released together: one delete for those nobody waits for; a
    /// lock with a waiter is released and its project's deferred job woken.
    @Test func locksAreReleasedTogetherAndWaitersWoken() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let p1 = try await h.store.insertProject(name: "P1", repoURL: nil)
        let p2 = try await h.store.insertProject(name: "P2", repoURL: nil)
        _ = try await h.store.insertJob(projectId: p1, spec: tinySpec)
        _ = try await h.store.insertJob(projectId: p2, spec: tinySpec)
        let waiting = try await h.store.insertJob(projectId: p2, spec: tinySpec)
        var holders: [(job: ClaimedJob, projectId: JSONValue)] = []
        for _ in 0..<2 {
            let job = try #require(try await h.store.claim(owner: "test", leaseSeconds: 60))
            let projectId = try #require(job.projectId)
            #expect(try await h.store.acquireProjectLock(job, projectId: projectId, leaseSeconds: 60))
            holders.append((job, projectId))
        }
        let third = try #require(try await h.store.claim(owner: "test", leaseSeconds: 60))
        #expect(third.idText == waiting)
        #expect(try await !h.store.acquireProjectLock(third, projectId: .string(p2), leaseSeconds: 60))
        #expect(try await h.store.deferForProject(third, leaseSeconds: 60))
        #expect(try await h.job(waiting)["waitingForProject"] == true)

        try await h.store.releaseProjectLocks(holders)
        let locks = try await h.store.pool.run("project_locks") { try CollectionOps.find($0, filter: [:]) }
        #expect(locks.isEmpty, "\(locks)")
        let woken = try await h.job(waiting)
        #expect(woken["status"] == "pending" && woken["waitingForProject"] == nil && woken["notBefore"] == nil, "\(woken)")
        #expect(try await h.store.claim(owner: "test", leaseSeconds: 60)?.idText == waiting)
    }

    /// One supervisor runs a project's jobs one after another: it claims the
    /// next only once the last one's lock release is written, so none is
    /// claimed early and deferred (three lock acquisitions, no waiter marked),
    /// and `--exit-when-idle` does not exit while a release is still to come.
    @Test func aProjectsJobsFollowEachOtherWithoutADeferral() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(countingIn: h.root)
        defer { proxy.stop() }
        let p = try await h.store.insertProject(name: "Serial", repoURL: nil)
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await h.store.insertJob(projectId: p, spec: tinySpec)) }
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: [
            "MONGODB_URI": proxy.uri, "RUNNER_CONCURRENCY": "2",
            "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        for id in ids {
            let doc = try await h.job(id)
            #expect(doc["status"] == "done", "\(doc)")
        }
        let project = try #require(try await h.store.project(.string(p)))
        #expect(Set(project["jobIds"]?.arrayValue?.compactMap(\.stringValue) ?? []) == Set(ids), "\(project)")
        try await Task.sleep(for: .milliseconds(200))
        let by = Dictionary(grouping: proxy.commands(monitoring: false), by: { $0 }).mapValues(\.count)
        #expect(by["findAndModify project_locks"] == 3, "\(by)")
        #expect(by["update project_locks", default: 0] == 0, "no waiter marked: \(by)")
    }
}
