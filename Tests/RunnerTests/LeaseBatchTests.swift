import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Issue 15, items 1 and 2: running jobs cost the database one renewal per
/// supervisor per interval, not reads and writes per job; cancellation comes
/// on the change stream. Requests are counted on the wire by a proxy
/// (Tests/Fixtures/mongo_proxy.py --count) in front of the test server.
@Suite(.serialized) struct LeaseBatchTests {
    let queue = QueueFixture()

    /// Runs `jobs` long jobs under one supervisor through a counting proxy and
    /// returns the commands sent during `window` seconds of steady state, and
    /// how many jobs were claimed again meanwhile (a lease that lapsed on a
    /// loaded machine).
    func steadyState(jobs: Int, leaseSeconds: Int, window: Double) async throws
        -> (during: [String], tokens: [(command: String, tokens: Int)], reclaims: Int) {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(countingIn: h.root)
        defer { proxy.stop() }
        for i in 0..<jobs {
            let p = try await h.store.insertProject(name: "L\(i)", repoURL: nil)
            _ = try await h.store.insertJob(projectId: p, spec: tinySpec)
        }
        let s = try h.startSupervisor(["MONGODB_URI": proxy.uri,
                                              "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: window + 60),
                                              "RUNNER_CONCURRENCY": "\(jobs)", "LEASE_SECONDS": "\(leaseSeconds)",
                                              "SHUTDOWN_GRACE_SECONDS": "1"])
        defer { if s.isRunning { kill(s.processIdentifier, SIGKILL) } }
        try await queue.waitFor("every job to start", timeout: 120) { queue.runs(h).filter { $0.kind == "start" }.count == jobs }
        try await Task.sleep(for: .seconds(1))
        let before = proxy.commands().count, tokensBefore = proxy.commandsWithTokens().count
        try await Task.sleep(for: .seconds(window))
        let during = Array(proxy.commands().dropFirst(before))
        let tokens = Array(proxy.commandsWithTokens().dropFirst(tokensBefore))
        let reclaims = queue.runs(h).filter { $0.kind == "start" }.count - jobs
        let perJobSecond = Double(during.count) / Double(jobs) / window
        print("steady state: \(jobs) running jobs, LEASE_SECONDS=\(leaseSeconds), \(window) s: \(during.count) requests, "
              + String(format: "%.3f", perJobSecond) + " per running job per second; by command: "
              + Dictionary(grouping: during, by: { $0 }).mapValues(\.count).sorted { $0.key < $1.key }
                .map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        s.terminate()
        _ = try await queue.waitExit(s)
        return (during, tokens, reclaims)
    }

    @Test func runningJobsAreRenewedTogetherAndNeverPolledOneByOne() async throws {
        // LEASE_SECONDS=9: renewals every 3 s, with room for a loaded machine (at 3 s a slow
        // renewal under a parallel suite fenced jobs, and their reclaims crowded the window).
        let jobs = 6, window = 12.0
        let (during, tokens, reclaims) = try await steadyState(jobs: jobs, leaseSeconds: 9, window: window)
        // Per job, the old supervisor sent a heartbeat findAndModify and a
        // project-lock update every second and a cancel read every second.
        // A heartbeat is a write to `jobs`, whatever its command: one per
        // renewal round (every LEASE_SECONDS/3 = 3 s) for all jobs, never one
        // per job (that would be at least `jobs` per round).
        let writes = ["update", "findAndModify", "insert", "delete", "bulkWrite"]
        let jobWrites = during.filter { line in writes.contains { line.hasPrefix($0 + " ") } && line.hasSuffix(" jobs") }
        // Even at the renewal's own period, a per-job heartbeat would write
        // `jobs` times a round (24 in the window). One write a round (one
        // more for a round at the window's edge, one for a safety poll's
        // sweep), plus a claim for each job reclaimed on a loaded machine, is the bound.
        let rounds = Int(window / 3)
        // (A loaded machine renews sooner, once a second near a lapse: 12 were seen.)
        #expect(jobWrites.count < rounds * jobs + reclaims,
                "a per-job heartbeat: \(jobWrites.count) writes to jobs in \(window) s for \(jobs) running jobs, \(reclaims) reclaimed")
        let jobReads = during.filter { $0 == "find jobs" }.count
        // A per-job cancel poll would read `jobs` times a second (36 here); one
        // read a second at most, plus a reclaim's claim search, stays well below.
        #expect(jobReads < jobs * Int(window) / 2, "\(jobReads) reads of jobs in \(window) s for \(jobs) running jobs")
        #expect(during.filter { $0 == "update jobs" }.count >= 1, "the leases were renewed")
        // What each write names, whatever the machine's load: a renewal names
        // every running job's lease token, a per-job heartbeat one. (A job
        // claimed again names two: the lapsed token and its new one.)
        let writesToJobs = tokens.filter { $0.command == "update jobs" || $0.command == "findAndModify jobs" }
        #expect(writesToJobs.contains { $0.tokens == jobs }, "a renewal of all \(jobs) leases at once: \(writesToJobs)")
        #expect(writesToJobs.filter { $0.tokens == 1 }.count <= reclaims, "writes naming one lease: \(writesToJobs)")
    }

    /// The figure for the report: 30 long jobs at the default lease.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MEASURE_LEASES"] != nil))
    func measureThirtyRunningJobs() async throws {
        let during = try await steadyState(jobs: 30, leaseSeconds: 30, window: 30).during
        #expect(Double(during.count) / 30 / 30 <= 0.15)
    }

    /// A lease taken over by another runner is noticed by the batched renewal.
    @Test func theBatchedRenewalLearnsWhichLeasesWereLost() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        for name in ["A", "B", "C"] {
            let p = try await h.store.insertProject(name: name, repoURL: nil)
            _ = try await h.store.insertJob(projectId: p, spec: tinySpec)
        }
        var held: [ClaimedJob] = []
        for _ in 0..<3 { held.append(try #require(try await h.store.claim(owner: "me", leaseSeconds: 60))) }
        #expect(try await h.store.acquireProjectLock(held[0], projectId: held[0].projectId!, leaseSeconds: 60))
        // Another runner takes the second job over; someone cancels the third.
        let taken = held[1].id
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": taken], update: ["$set": ["lease.token": "theirs"]])
        }
        #expect(try await h.store.requestCancel(held[2].idText))
        let before = try await h.job(held[0].idText)["lease"]?["expiresAt"]?.dateValue
        let flags = try await h.store.renewLeases(held.map(\.token), leaseSeconds: 600).held
        #expect(flags == [held[0].token: false, held[2].token: true])
        let after = try await h.job(held[0].idText)["lease"]?["expiresAt"]?.dateValue
        #expect(after! > before!.addingTimeInterval(300), "the held lease was renewed")
        let theirs = try await h.job(held[1].idText)["lease"]?["expiresAt"]?.dateValue
        #expect(theirs! < Date().addingTimeInterval(120), "the lost lease was not touched")
        let lock = try await h.store.pool.run("project_locks") { try CollectionOps.find($0, filter: [:], limit: 1) }.first
        #expect(lock?["expiresAt"]?.dateValue.map { $0 > Date().addingTimeInterval(300) } == true, "the project lock was extended")
    }

    /// Without a change stream (the proxy rejects `$changeStream`), a cancel
    /// is still read, for all running jobs at once, every RUNNER_POLL_SECONDS.
    @Test func withoutAChangeStreamTheCancelIsPolledInOneRead() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(refusing: ["$changeStream"], countingIn: h.root)
        defer { proxy.stop() }
        var ids: [String] = []
        for name in ["A", "B", "C"] {
            let p = try await h.store.insertProject(name: name, repoURL: nil)
            ids.append(try await h.store.insertJob(projectId: p, spec: tinySpec))
        }
        let s = try h.startSupervisor(["MONGODB_URI": proxy.uri,
                                              "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 300),
                                              "RUNNER_CONCURRENCY": "3", "RUNNER_POLL_SECONDS": "1", "LEASE_SECONDS": "60",
                                              "SHUTDOWN_GRACE_SECONDS": "1"])
        defer { if s.isRunning { kill(s.processIdentifier, SIGKILL) } }
        try await queue.waitFor("every job to start", timeout: 120) { queue.runs(h).filter { $0.kind == "start" }.count == 3 }
        #expect(try await h.store.requestCancel(ids[1]))
        try await queue.waitFor("the cancel", timeout: 10) { try await h.job(ids[1])["status"]?.stringValue == "cancelled" }
        #expect(try await h.job(ids[0])["status"]?.stringValue == "running")
        let commands = proxy.commands()
        #expect(!commands.contains { $0.hasPrefix("getMore") }, "no change stream ran")
        #expect(!commands.contains { $0.hasPrefix("findAndModify") && !$0.hasSuffix("project_locks") },
                "no per-job heartbeat")
        s.terminate()
        _ = try await queue.waitExit(s)
    }
}
