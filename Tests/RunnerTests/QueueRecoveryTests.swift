import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Crashes and outages: a supervisor killed with SIGKILL, a lease stolen
/// from a stalled child, the database stopped and restarted mid-run.
@Suite(.serialized) struct QueueRecoveryTests {
    let queue = QueueFixture()

    @Test func supervisorKilledMidJobLosesNothingAndPublishesOnce() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // An agent that waits for the test keeps jobs mid-flight until the
        // supervisor is dead (a timed agent could finish a job between the
        // check that the victim holds it and the kill). Its folder is
        // readable inside the sandbox: it holds the agent.
        let bin = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\nwhile [ ! -e \(bin)/release ]; do sleep 0.1; done\necho '# slow agent' > README.md\necho ok > app.txt\n"
            .write(toFile: bin + "/cline", atomically: true, encoding: .utf8)
        chmod(bin + "/cline", 0o755)
        var jobs: [(id: String, remote: String)] = []
        for i in 0..<4 {
            let remote = h.root + "/remote-\(i).git"
            try await Git.initBare(remote)
            let p = try await h.store.insertProject(name: "K\(i)", repoURL: "file://" + remote)
            jobs.append((try await h.store.insertJob(projectId: p, spec: tinySpec), remote))
        }
        // Short leases, so a loaded machine may see more lapses than the kill's:
        // each counts an attempt (LeaseLapseTests), and this test is about losing nothing.
        let env = ["CLINE_CMD": bin + "/cline", "CLINE_ENABLED": "true", "GENERATORS": "cline,scaffold",
                   "LEASE_SECONDS": "3", "RUNNER_CONCURRENCY": "2", "JOB_MAX_ATTEMPTS": "20"]
        let victim = try h.startSupervisor(env)
        let other = try h.startSupervisor(env, args: ["--exit-when-idle"])
        defer { for p in [victim, other] where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // The victim must hold a job when it dies: running, under a lease it owns
        // (its owner is host:pid:nonce).
        let victimOwner = ":\(victim.processIdentifier):"
        var held: [String] = []
        try await queue.waitFor("the victim to hold a job") {
            held = []
            for (id, _) in jobs {
                let job = try await h.job(id)
                if job["status"]?.stringValue == "running",
                   job["lease"]?["owner"]?.stringValue?.contains(victimOwner) == true { held.append(id) }
            }
            return !held.isEmpty
        }
        kill(victim.processIdentifier, SIGKILL)
        #expect(!held.isEmpty, "the killed supervisor held no job")
        #expect(FileManager.default.createFile(atPath: bin + "/release", contents: Data()))
        _ = try await queue.waitExit(other, timeout: 60)
        // The dead runner's leases lapse (on a loaded machine a renewal can land just before the kill).
        try await queue.waitFor("the dead runner's leases to lapse", timeout: 60) {
            for (id, _) in jobs {
                let job = try await h.job(id)
                if job["status"]?.stringValue == "running", (job["lease"]?["expiresAt"]?.dateValue ?? .distantFuture) > Date() {
                    return false
                }
            }
            return true
        }
        let restarted = try h.startSupervisor(env, args: ["--exit-when-idle"])
        defer { if restarted.isRunning { kill(restarted.processIdentifier, SIGKILL) } }
        #expect(try await queue.waitExit(restarted, timeout: 90) == 0)
        for (id, remote) in jobs {
            let job = try await h.job(id)
            if held.contains(id) {
                #expect((job["attempts"]?.intValue ?? 0) >= 2, "\(id): held by the killed runner, so claimed again")
            }
            #expect(job["status"]?.stringValue == "done", "\(id): \(job["logs"]?.jsonString ?? "")")
            let log = try await Git.run(["-C", remote, "log", "--format=%B", "main"])
            #expect(log.components(separatedBy: "Architex-Job: \(id)").count - 1 == 1, "one commit per job on \(remote)")
        }
    }

    @Test func stalledChildsLateResultIsIgnoredAfterItsLeaseIsLost() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor(["AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 4), "LEASE_SECONDS": "3"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await queue.waitFor("the job to start") { queue.runs(h).contains { $0.kind == "start" } }
        // Another runner takes the job over (as after a lease expiry).
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(id)],
                                     update: ["$set": ["lease.token": "someone-else", "lease.owner": "other",
                                                       "lease.expiresAt": .date(Date().addingTimeInterval(300))]])
        }
        try await Task.sleep(for: .seconds(6))
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "running")
        #expect(job["lease"]?["token"]?.stringValue == "someone-else")
        #expect(job["metadata"] == nil, "the stale attempt must write nothing")
        #expect(!queue.runs(h).contains { $0.kind == "end" }, "the stale child was stopped")
        p.terminate()
        #expect(try await queue.waitExit(p) == 0)
    }

    @Test func databaseRestartMidRunIsSurvived() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let db = try await PrivateDatabase(dir: h.root + "/db")
        defer { db.stop() }
        let store = JobStore(pool: try MongoPool(uri: db.uri, databaseName: "outage"), logCap: 1000)
        var ids: [String] = []
        for i in 0..<4 {
            let p = try await store.insertProject(name: "O\(i)", repoURL: nil)
            ids.append(try await store.insertJob(projectId: p, spec: tinySpec))
        }
        let env = ["MONGODB_URI": db.uri, "MONGO_DB_NAME": "outage", "RUNNER_CONCURRENCY": "2",
                   "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 2)]
        let p = try h.startSupervisor(env, args: ["--exit-when-idle"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await queue.waitFor("jobs to start") { queue.runs(h).contains { $0.kind == "start" } }
        db.stop()
        try await Task.sleep(for: .seconds(4))
        #expect(p.isRunning, "the supervisor must survive the outage")
        try await db.start()
        #expect(try await queue.waitExit(p, timeout: 120) == 0)
        for id in ids {
            let job = try await store.job(id)
            #expect(job?["status"]?.stringValue == "done", "\(id): \(job?.jsonString ?? "missing")")
        }
    }
}

/// A SecantusDB server of the test's own (from the project's .venv), on a
/// fixed port and on-disk storage, so it can be stopped and started again.
final class PrivateDatabase: @unchecked Sendable {
    let dir: String
    let port: Int
    var process: Process?
    var uri: String { "mongodb://127.0.0.1:\(port)/?directConnection=true&serverSelectionTimeoutMS=2000" }

    init(dir: String) async throws {
        self.dir = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "".write(toFile: dir + "/secantusd.toml", atomically: true, encoding: .utf8)
        port = freePort()
        try await start()
    }

    func start() async throws {
        let root = TestEnv.repoRoot
        let p = Process()
        p.executableURL = URL(fileURLWithPath: root + "/.venv/bin/secantusd-py")
        p.arguments = ["--config", dir + "/secantusd.toml", "--host", "127.0.0.1", "--port", "\(port)",
                       "--storage-path", dir + "/data", "--cache-size", "128M"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        process = p
        for _ in 0..<150 {
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            close(s)
            if ok { try await Task.sleep(for: .milliseconds(300)); return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Git.GitCLIError(message: "the private database did not start")
    }

    func stop() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }
}
