import Foundation
import JobStore
import RunnerCore
import Testing

/// Issue 13, item 3: enforcement never waits on the database. The database
/// is a private server stopped with SIGSTOP (it accepts connections but never
/// answers), and the URI's socketTimeoutMS is 10 minutes, so every database
/// call hangs for the whole test: only the supervisor's own clock can act.
@Suite(.serialized) struct EnforcementTests {
    let queue = QueueFixture()

    /// A child that appends its pid to `<root>/pids`; on a second run (after
    /// `<root>/second` exists) it succeeds at once, else it hangs.
    func recordingChild(_ h: Harness) throws -> String {
        let path = h.root + "/recording-child"
        try """
        #!/bin/sh
        head -n 1 > /dev/null
        echo $$ >> \(h.root)/pids
        if [ -e \(h.root)/second ]; then
          echo '{"type":"result","ok":true,"metadata":{"generator":"fake"}}'
          exit 0
        fi
        touch \(h.root)/second
        echo '{"type":"stage","stage":"generating"}'
        exec sleep 300
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func pids(_ h: Harness) -> [pid_t] {
        ((try? String(contentsOfFile: h.root + "/pids", encoding: .utf8)) ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    func alive(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 }

    /// Starts a supervisor on a private database; returns it, the database and a store on it.
    func start(_ h: Harness, _ env: [String: String]) async throws -> (Process, PrivateDatabase, JobStore, String) {
        let db = try await PrivateDatabase(dir: h.root + "/db")
        let uri = db.uri + "&socketTimeoutMS=600000"
        let store = JobStore(pool: try MongoPool(uri: uri, databaseName: "enforce"), logCap: 100)
        let project = try await store.insertProject(name: "E", repoURL: nil)
        let id = try await store.insertJob(projectId: project, spec: tinySpec)
        let p = try h.startSupervisor(["MONGODB_URI": uri, "MONGO_DB_NAME": "enforce",
                                              "AGENT_RUNNER_JOB_PATH": try recordingChild(h),
                                              // Host pids for the checks: the stand-in child runs without namespaces.
                                              "SANDBOX": "off", "JOB_NETWORK": "host"].merging(env) { $1 })
        try await queue.waitFor("the child to start") { !pids(h).isEmpty }
        return (p, db, store, id)
    }

    @Test func theTimeoutStopsTheChildWhileTheDatabaseHangs() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (p, db, store, id) = try await start(h, ["JOB_TIMEOUT_SECONDS": "3", "LEASE_SECONDS": "600"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; db.stop() }
        let child = try #require(pids(h).first)
        kill(db.process!.processIdentifier, SIGSTOP)
        try await queue.waitFor("the timeout to stop the child", timeout: 30) { !alive(child) }
        #expect(!alive(child), "the child outlived JOB_TIMEOUT_SECONDS while the database hung")
        kill(db.process!.processIdentifier, SIGCONT)
        try await queue.waitFor("the outcome", timeout: 60) { try await store.job(id)?["status"]?.stringValue == "failed" }
        #expect(try await store.job(id)?["error"]?["code"]?.stringValue == "timeout")
        p.terminate()
        _ = try await queue.waitExit(p)
    }

    /// When `pid` was first seen gone (exited: no process, or a zombie), by
    /// a thread that looks every 10 ms: never earlier than the exit itself.
    func seenGone(_ pid: pid_t, timeout: Double) async throws -> Date? {
        try await onOwnThread {
            let end = Date().addingTimeInterval(timeout)
            while Date() < end {
                let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
                let state = stat.split(separator: ")").last?.split(separator: " ").first
                if stat.isEmpty || state == "Z" { return Date() }
                usleep(10_000)
            }
            return nil
        }
    }

    @Test func aLeaseThatCannotBeRenewedStopsTheChildBeforeItLapses() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // LEASE_SECONDS=20: a renewal every 6.7 s; the child is stopped 2 s before the lease lapses
        // (room for a loaded machine to see it gone).
        let (p, db, store, id) = try await start(h, ["JOB_TIMEOUT_SECONDS": "600", "LEASE_SECONDS": "20"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) }; db.stop() }
        let child = try #require(pids(h).first)
        // The database stops right after a renewal landed: the expiry it holds is the lease's last.
        let claimed = try await store.job(id)?["lease"]?["expiresAt"]?.dateValue
        try await queue.waitFor("a renewal", timeout: 30) {
            try await store.job(id)?["lease"]?["expiresAt"]?.dateValue != claimed
        }
        let expiresAt = try #require(try await store.job(id)?["lease"]?["expiresAt"]?.dateValue)
        kill(db.process!.processIdentifier, SIGSTOP)
        let gone = try await seenGone(child, timeout: 30)
        // The order that matters: the child was gone before the lease lapsed
        // (after which another runner may claim the job), on one clock: the
        // expiry the database holds and the moment the child was seen gone.
        #expect(gone != nil, "a partitioned runner's child outlived its lease")
        if let gone { #expect(gone < expiresAt, "the child was seen gone at \(gone), after its lease lapsed at \(expiresAt)") }
        kill(db.process!.processIdentifier, SIGCONT)
        // Nothing was written for the fenced attempt; the lapsed lease is claimed again and the job runs once more.
        try await queue.waitFor("the second attempt", timeout: 90) { try await store.job(id)?["status"]?.stringValue == "done" }
        let job = try #require(try await store.job(id))
        #expect(job["attempts"]?.intValue == 2, "\(job.jsonString)")
        #expect(pids(h).count == 2)
        p.terminate()
        _ = try await queue.waitExit(p)
    }
}
