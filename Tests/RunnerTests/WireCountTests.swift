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
        // `finished`, the last stage's lines and all of its log. (Its stages
        // while it runs go with the supervisor's batched flush, here not due
        // for progress alone; they were five writes of their own before.)
        // The sweep of cancelled pending jobs runs at start, and again on a
        // wake-up that may follow a cancel (the stream reported down, a safety
        // poll): the proxy tells it apart ("update jobs sweep").
        #expect(by["update jobs", default: 0] == 2, "claim and outcome: \(by)")
        #expect(by["update jobs sweep", default: 0] >= 1, "the sweep at start: \(by)")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.hasPrefix("sandbox: landlock") } && logs.contains { $0.hasPrefix("child exited") }, "\(logs)")
        // No per-job heartbeat, whatever command would carry it: between its
        // claim and its outcome nothing writes the job (its lease included).
        let writes = ["update", "findAndModify", "insert", "delete", "bulkWrite"]
        let jobWrites = lines.filter { line in writes.contains { line.hasPrefix($0 + " ") } && line.hasSuffix(" jobs") }
        #expect(jobWrites == ["update jobs", "update jobs"], "no per-job heartbeat: \(jobWrites)")
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
        // (those follow the clock, not the job), up to the job's outcome:
        // start-up (indexes, the queue's shape, the stream's open and its
        // check), the job's claim, lock, project read, events and outcome:
        // 12. The claim searches besides (`find jobs`) follow the loop's
        // wake-ups, the change events of the job's own writes among them:
        // 6 to 17 were seen, as the machine's load went; they are bounded apart.
        let clocked: Set<String> = ["hello ", "isMaster ", "getMore "]
        let outcome = try #require(lines.lastIndex(of: "update jobs"), "the outcome's write")
        let counted = lines[...outcome].filter { !clocked.contains($0) && !$0.hasSuffix(" sweep") && $0 != "find jobs" }
        #expect(counted.count <= 13, "\(counted.count) requests for one short job, up to its outcome: \(counted)")
        let searches = lines[...outcome].filter { $0 == "find jobs" }.count
        #expect(searches <= 40, "\(searches) claim searches up to the job's outcome")
        // After it, until the supervisor exits, only the job's batched writes
        // and the marker's removal, besides searches and sweeps, whose number
        // follows the wake-ups until the exit (more on a loaded machine).
        // (The change stream's cursor may be closed at the exit: a
        // killCursors, once per supervisor run.)
        let searchKinds: Set<String> = ["find jobs", "find project_locks", "killCursors $cmd.aggregate"]
        let after = lines[(outcome + 1)...].filter { !clocked.contains($0) && !searchKinds.contains($0) && !$0.hasSuffix(" sweep") }
        #expect(after.sorted() == ["delete project_locks", "delete runner_markers", "update projects"], "\(after)")
    }
}
