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
            jobs.append(try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600)))
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
        // The proxy counts a command before it forwards it: no wait needed.
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
            jobs.append(try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600)))
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

    /// Locks released together: one delete for all those nobody waits for;
    /// a lock with a waiter is then released on its own and its project's
    /// deferred job woken. A job's `whenReleased` runs once its release is written.
    @Test func locksAreReleasedTogetherAndWaitersWoken() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        var projects: [String] = []
        for i in 0..<3 {
            projects.append(try await h.store.insertProject(name: "P\(i)", repoURL: nil))
            _ = try await h.store.insertJob(projectId: projects[i], spec: tinySpec)
        }
        let waiting = try await h.store.insertJob(projectId: projects[2], spec: tinySpec)
        var holders: [(job: ClaimedJob, projectId: JSONValue)] = []
        for _ in 0..<3 {
            let job = try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600))
            let projectId = try #require(job.projectId)
            #expect(try await h.store.acquireProjectLock(job, projectId: projectId, leaseSeconds: 3600))
            holders.append((job, projectId))
        }
        let fourth = try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600))
        #expect(fourth.idText == waiting)
        #expect(try await !h.store.acquireProjectLock(fourth, projectId: .string(projects[2]), leaseSeconds: 60))
        #expect(try await h.store.deferForProject(fourth, leaseSeconds: 60))
        #expect(try await h.job(waiting)["waitingForProject"] == true)

        let proxy = try await DatabaseProxy(countingIn: h.root)
        defer { proxy.stop() }
        let store = JobStore(pool: try MongoPool(uri: proxy.uri, databaseName: h.dbName), logCap: 1000)
        let logger = Logger(label: "test")
        let writes = WriteBatcher(store: store, leases: LeaseKeeper(store: store, leaseSeconds: 60, pollSeconds: 1,
                                                                     logger: logger), logger: logger)
        let fired = Locked(0)
        for holder in holders {
            await writes.release(holder.job, projectId: holder.projectId)
            await writes.whenReleased(holder.job) { fired.withLock { $0 += 1 } }
        }
        #expect(fired.withLock { $0 } == 0, "nothing is released before the flush")
        proxy.resetCount()
        await writes.flush()
        #expect(fired.withLock { $0 } == 3)
        // One bulk delete; the lock left (it has a waiter) found, deleted, and its project's jobs woken (one update per name of the reference).
        #expect(proxy.commands(monitoring: false) == ["delete project_locks", "find project_locks", "delete project_locks",
                                                     "update jobs", "update jobs"], "\(proxy.commands(monitoring: false))")
        let locks = try await h.store.pool.run("project_locks") { try CollectionOps.find($0, filter: [:]) }
        #expect(locks.isEmpty, "\(locks)")
        let woken = try await h.job(waiting)
        #expect(woken["status"] == "pending" && woken["waitingForProject"] == nil && woken["notBefore"] == nil, "\(woken)")
        #expect(try await h.store.claim(owner: "test", leaseSeconds: 3600)?.idText == waiting)
    }

    /// A waited lock's release is safe to repeat: after an attempt that
    /// deleted the lock but could not wake the project's jobs (an outage),
    /// the retry deletes nothing and wakes them.
    @Test func aRetriedWaitedReleaseStillWakes() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let p = try await h.store.insertProject(name: "R", repoURL: nil)
        _ = try await h.store.insertJob(projectId: p, spec: tinySpec)
        let waiting = try await h.store.insertJob(projectId: p, spec: tinySpec)
        let holder = try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600))
        #expect(try await h.store.acquireProjectLock(holder, projectId: .string(p), leaseSeconds: 60))
        let second = try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600))
        #expect(try await h.store.deferForProject(second, leaseSeconds: 60))
        // The first attempt's delete went through; its wake-up did not.
        _ = try await h.store.pool.run("project_locks") { try CollectionOps.delete($0, filter: ["_id": .string(p)]) }
        #expect(try await h.job(waiting)["waitingForProject"] == true)
        try await h.store.releaseWaitedLock(holder, projectId: .string(p))
        #expect(try await h.job(waiting)["waitingForProject"] == nil)
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
            "MONGODB_URI": proxy.uri, "RUNNER_CONCURRENCY": "2", "LEASE_SECONDS": "600",
            "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0),
        ])
        #expect(r.status == 0, "\(r.stderr)")
        for id in ids {
            let doc = try await h.job(id)
            #expect(doc["status"] == "done", "\(doc)")
        }
        #expect(r.stderr.contains("claimed"), "the supervisor logs at info: \(r.stderr)")
        #expect(!r.stderr.contains("deferred until it ends"), "\(r.stderr)")
        let project = try #require(try await h.store.project(.string(p)))
        #expect(Set(project["jobIds"]?.arrayValue?.compactMap(\.stringValue) ?? []) == Set(ids), "\(project)")
        let by = Dictionary(grouping: proxy.commands(monitoring: false), by: { $0 }).mapValues(\.count)
        #expect(by["findAndModify project_locks"] == 3, "\(by)")
        // No waiter marked (LEASE_SECONDS=600: no lease renewal writes project_locks meanwhile).
        #expect(by["update project_locks", default: 0] == 0, "no waiter marked: \(by)")
    }
}
