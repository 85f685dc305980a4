import Foundation
import RunnerCore
import Testing

/// Issue 15, item 3: what one short job costs the database, counted on the
/// wire by a proxy (Tests/Fixtures/mongo_proxy.py --count) in front of the
/// test server: every request the supervisor sends, start-up, monitoring and
/// change stream included. A count, not a timing: a change that adds a
/// round trip per job fails here.
@Suite struct WireCountTests {
    let queue = QueueFixture()

    @Test func oneShortJobStaysWithinItsRequestBudget() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let proxy = try await DatabaseProxy(countingIn: h.root)
        defer { proxy.stop() }
        let id = try await h.seed(tinySpec)
        // Progress may wait ten minutes for the batched flush (a debug-build
        // hook), so the job's can only reach the database with its outcome.
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["MONGODB_URI": proxy.uri, "AGENT_RUNNER_TEST_PROGRESS_MS": "600000",
                                              // No lease renewal (an update of jobs) within a slow run.
                                              "LEASE_SECONDS": "600",
                                              // No fallback poll (which sweeps again) while the stream proves itself.
                                              "RUNNER_POLL_SECONDS": "600"])
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job)")
        try await Task.sleep(for: .milliseconds(200))
        let lines = proxy.commands()
        let by = Dictionary(grouping: lines, by: { $0 }).mapValues(\.count)
        print("one short job, in order: " + lines.joined(separator: " | "))
        print("one short job: \(lines.count) requests: "
              + by.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        // The job's own writes: the claim (an updateOne whose candidate the
        // search read whole: no read-back) and the outcome, which carries
        // `finished`, the last stage's lines and all of its log; plus the
        // sweep of cancelled pending jobs at start. (Its stages while it runs
        // go with the supervisor's batched flush, here not due for progress
        // alone; they were five writes of their own before.)
        // (Until the change stream has proven itself the supervisor polls,
        // and a poll sweeps again: RUNNER_POLL_SECONDS is 600 s here, longer
        // than the run, so there is none.)
        #expect(by["update jobs", default: 0] == 3, "sweep, claim and outcome: \(by)")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.hasPrefix("sandbox: landlock") } && logs.contains { $0.hasPrefix("child exited") }, "\(logs)")
        // No per-job heartbeat, whatever command would carry it: between its
        // claim and its outcome nothing writes the job (its lease included).
        let writes = ["update", "findAndModify", "insert", "delete", "bulkWrite"]
        let jobWrites = lines.filter { line in writes.contains { line.hasPrefix($0 + " ") } && line.hasSuffix(" jobs") }
        #expect(jobWrites == Array(repeating: "update jobs", count: 3), "no per-job heartbeat: \(jobWrites)")
        // The project is read once (for the ticket), written once (the success,
        // batched: written when the supervisor exits, before it does).
        #expect(by["find projects", default: 0] == 1, "\(by)")
        #expect(by["update projects", default: 0] == 1, "\(by)")
        // Its lock: taken, then released in one delete (nobody waits).
        #expect(by["findAndModify project_locks", default: 0] == 1, "\(by)")
        #expect(by["delete project_locks", default: 0] == 1, "\(by)")
        #expect(by["update project_locks", default: 0] == 0, "\(by)")
        // The job's event stream: one insert of all its events, with its
        // outcome (its stages, its steps, its commit's changes); the
        // supervisor made the stream's indexes at start, with the jobs'.
        #expect(by["insert job_events", default: 0] == 1, "one request for the job's whole event stream: \(by)")
        #expect(by["createIndexes job_events", default: 0] == 1, "\(by)")
        let stored = try await h.store.events(jobId: id, after: 0, limit: 1000)
        #expect(stored.count >= 8 && stored.last?["data"]?["stage"] == "finished", "\(stored.count) events")
        // The change stream proves itself once at start (one write of its
        // marker, whose four changes come back on the stream's getMores), and
        // the marker is removed at exit: two requests per supervisor run, none per job.
        #expect(by["update runner_markers", default: 0] == 1, "\(by)")
        #expect(by["delete runner_markers", default: 0] == 1, "\(by)")
        // Everything but the driver's monitoring and the change stream's waits
        // (those follow the clock, not the job): start-up (indexes, the queue's
        // shape, the stream's open and its check), the claims (the job's, and the empty
        // searches after it) and the job's own requests: 40 before the event
        // stream, which adds its index at start and one insert per job. The
        // empty searches follow the loop's wake-ups, more of them on a loaded
        // machine (43 seen): 4 more are allowed.
        let clocked: Set<String> = ["hello ", "isMaster ", "getMore "]
        let counted = lines.filter { !clocked.contains($0) }
        #expect(counted.count <= 46, "\(counted.count) requests for one short job: \(by)")
    }
}
