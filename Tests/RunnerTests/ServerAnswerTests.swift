import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Trust no server's answer blindly: a proxy in front of the test server
/// (Tests/Fixtures/mongo_proxy.py) gets answers wrong the way some
/// MongoDB-wire servers do, and the supervisor either works by polling or
/// stops naming the problem, never loops silently.
@Suite(.serialized) struct ServerAnswerTests {
    let queue = QueueFixture()

    /// A supervisor's log so far.
    func log(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// A stream that opens and then delivers nothing its filter should
    /// match (`dropping` says which events the server loses) is found out
    /// within seconds; jobs are then picked up by polling and cancels read
    /// with the lease reads. Returns the supervisor's log.
    func silentStream(dropping types: [String]) async throws -> String {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(countingIn: h.root,
                                            misbehaving: [.dropEvents(pattern: "updateDescription.updatedFields", types: types)])
        defer { proxy.stop() }
        let path = h.root + "/supervisor.log"
        let s = try h.startSupervisor(["MONGODB_URI": proxy.uri, "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 300),
                                       "RUNNER_POLL_SECONDS": "1", "LEASE_SECONDS": "300", "SHUTDOWN_GRACE_SECONDS": "1"], log: path)
        defer { if s.isRunning { kill(s.processIdentifier, SIGKILL) } }
        try await queue.waitFor("the silent stream's warning", timeout: 30) { log(path).contains("change stream unavailable or silent") }
        // Then the supervisor polls every RUNNER_POLL_SECONDS (1 s), counted on
        // the wire by the sweep each poll makes while the stream is down: a
        // trusted stream's safety poll (every 30 s) would sweep once at most
        // in these 8 s, a loaded machine's 1 s poll 4 times at least.
        proxy.resetCount()
        try await Task.sleep(for: .seconds(8))
        let polls = proxy.commands(monitoring: false).filter { $0 == "update jobs sweep" }.count
        #expect(polls >= 4, "polls in 8 s while polling every second: \(proxy.commands(monitoring: false))")
        // Picked up by that poll (the wait is long for a loaded machine).
        let id = try await h.seed(tinySpec)
        try await queue.waitFor("the job's pickup by polling", timeout: 60) { queue.runs(h).contains { $0.kind == "start" && $0.job == id } }
        // Read with the lease reads of the poll, not at the next renewal (100 s after the claim).
        #expect(try await h.store.requestCancel(id))
        try await queue.waitFor("the cancel", timeout: 60) { try await h.job(id)["status"]?.stringValue == "cancelled" }
        s.terminate()
        _ = try await queue.waitExit(s)
        let text = log(path)
        #expect(text.components(separatedBy: "change stream unavailable or silent").count == 2, "one warning:\n\(text)")
        #expect(!text.contains("change stream open"), "\(text)")
        return text
    }

    @Test func aStreamThatDeliversNothingIsFoundOutAndTheSupervisorPolls() async throws {
        let text = try await silentStream(dropping: [])
        #expect(text.contains("did not deliver") && text.contains("inserts and replacements") && text.contains("cancelRequested"),
                "the warning names the server's behaviour:\n\(text)")
    }

    @Test func aStreamThatLosesOnlyUpdatesIsFoundOut() async throws {
        let text = try await silentStream(dropping: ["update"])
        #expect(text.contains("did not deliver") && text.contains("cancelRequested"), "\(text)")
        #expect(!text.contains("inserts and replacements"), "inserts did arrive:\n\(text)")
    }

    /// The server answers a dotted projection as a flat key: the lease
    /// read projects the whole `lease`, so no lease is lost and the jobs end done.
    @Test func aServerThatFlattensDottedProjectionsCostsNoLease() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(misbehaving: [.flattenDotted])
        defer { proxy.stop() }
        let ids = [try await h.seed(tinySpec), try await h.seed(tinySpec, project: "Second")]
        // Renewals every 4 s: each job lives through two or more.
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: [
            "MONGODB_URI": proxy.uri, "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 10),
            "LEASE_SECONDS": "12", "RUNNER_CONCURRENCY": "2"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        for id in ids {
            let job = try await h.job(id)
            #expect(job["status"]?.stringValue == "done" && job["attempts"]?.intValue == 1, "\(job)")
        }
        #expect(!r.stderr.contains("leaseLost") && !r.stderr.contains("contradict"), "\(r.stderr)")
    }

    /// A server that answers the lease sub-document flat (no nested
    /// `lease.token`): an error naming both answers, no child stopped, and
    /// after three such answers exit 69 naming the query shape.
    @Test func aMalformedLeaseAnswerStopsWithExit69AndKillsNoChild() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(misbehaving: [.flattenNested])
        defer { proxy.stop() }
        let ids = [try await h.seed(tinySpec), try await h.seed(tinySpec, project: "Second")]
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: [
            "MONGODB_URI": proxy.uri, "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 20),
            "LEASE_SECONDS": "12", "RUNNER_CONCURRENCY": "2", "SHUTDOWN_GRACE_SECONDS": "60"], timeout: 150)
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("the database's answers contradict each other"), "\(r.stderr)")
        #expect(r.stderr.contains("lease renewal") && r.stderr.contains("without a nested lease.token"), "\(r.stderr)")
        #expect(r.stderr.contains("the database mishandles a query shape: a find projecting the lease sub-document"), "\(r.stderr)")
        #expect(!r.stderr.contains("leaseLost"), "no child was stopped for a lost lease: \(r.stderr)")
        // The children ran to their end: the jobs are done, in one attempt.
        for id in ids {
            let job = try await h.job(id)
            #expect(job["status"]?.stringValue == "done" && job["attempts"]?.intValue == 1, "\(job)")
        }
        #expect(queue.runs(h).filter { $0.kind == "end" }.count == 2)
    }

    /// A running job whose lease expired, read back with its dates as
    /// strings: no proof that the lease expired, so it is not taken over;
    /// exit 69 naming the shape.
    @Test func anExpiredLeaseAnsweredWithAStringDateIsNotTakenOver() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec)
        let lease: JSONValue = ["owner": "gone", "token": "theirs", "expiresAt": .date(Date().addingTimeInterval(-60))]
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: JobStore.idFilter(id), update: ["$set": ["status": "running", "lease": lease]])
        }
        let proxy = try await DatabaseProxy(misbehaving: [.datesAsStrings])
        defer { proxy.stop() }
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: [
            "MONGODB_URI": proxy.uri, "AGENT_RUNNER_JOB_PATH": try queue.fakeChild(h, seconds: 0)], timeout: 90)
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("a lease whose expiresAt is not a date"), "\(r.stderr)")
        #expect(r.stderr.contains("the database mishandles a query shape: a find on lease.expiresAt $lt now answers dates in another form"),
                "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["lease"]?["token"]?.stringValue == "theirs" && job["status"]?.stringValue == "running", "\(job)")
        #expect(queue.runs(h).isEmpty)
    }

    /// doctor checks the answers' shapes, and the change stream.
    @Test func doctorFindsDatesAsStringsAndASilentStream() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let dates = try await DatabaseProxy(misbehaving: [.datesAsStrings])
        defer { dates.stop() }
        let r = try await h.agentRunner(["doctor"], env: ["MONGODB_URI": dates.uri], timeout: 90)
        #expect(r.status != 0)
        #expect(r.stdout.contains("fail  database answers the claimed job read back") && r.stdout.contains("is not read back as a date"),
                "\(r.stdout)")
        let silent = try await DatabaseProxy(misbehaving: [.dropEvents(pattern: "updateDescription.updatedFields")])
        defer { silent.stop() }
        let s = try await h.agentRunner(["doctor"], env: ["MONGODB_URI": silent.uri], timeout: 90)
        #expect(s.stdout.contains("warn  change stream not usable: the server accepted the change stream's filter but did not deliver"),
                "\(s.stdout)")
        let flat = try await DatabaseProxy(misbehaving: [.flattenNested])
        defer { flat.stop() }
        let f = try await h.agentRunner(["doctor"], env: ["MONGODB_URI": flat.uri], timeout: 90)
        #expect(f.stdout.contains("fail  database answers renewLeases") && f.stdout.contains("without a nested lease.token"), "\(f.stdout)")
        let fine = try await h.agentRunner(["doctor"], timeout: 90)
        #expect(fine.stdout.contains("ok    change stream checked") && fine.stdout.contains("answers them as asked"), "\(fine.stdout)")
    }

    /// The lease answers, checked: a job that ended between the renewal and
    /// the read is no contradiction; a read that lost a matched lease, or
    /// came back malformed, is, and costs no child.
    @Test func leaseAnswersAreCheckedAgainstTheRenewal() {
        let nested: (String) -> JSONValue = { ["_id": .string("j-" + $0), "lease": ["token": .string($0)]] }
        let ended = JobStore.checkLeaseAnswer(tokens: ["a", "b", "c"], matched: 3, docs: [nested("a"), nested("b")],
                                              released: { $0 == "c" })
        #expect(ended.contradiction == nil && ended.held == ["a": false, "b": false])
        let lostRead = JobStore.checkLeaseAnswer(tokens: ["a", "b", "c"], matched: 3, docs: [nested("a"), nested("b")],
                                                 released: { _ in false })
        #expect(lostRead.contradiction != nil && lostRead.unsure == ["c"] && !lostRead.lost("c"))
        let flat = JobStore.checkLeaseAnswer(tokens: ["a", "b"], matched: 2,
                                             docs: [["_id": "j-a", "lease.token": "a"], ["_id": "j-b", "lease.token": "b"]],
                                             released: { _ in false })
        #expect(flat.contradiction?.shape.contains("without a nested lease.token") == true)
        #expect(flat.heldUnread == ["a", "b"] && !flat.lost("a") && !flat.lost("b"))
        let more = JobStore.checkLeaseAnswer(tokens: ["a", "b"], matched: 1, docs: [nested("a"), nested("b")], released: { _ in false })
        #expect(more.contradiction != nil)
        let taken = JobStore.checkLeaseAnswer(tokens: ["a", "b", "c"], matched: 2, docs: [nested("a"), nested("b")],
                                              released: { _ in false })
        #expect(taken.contradiction == nil && taken.lost("c"))
    }

    /// GIT_TOKEN_SOURCE=user with a dotted GIT_TOKEN_USER_FIELD: the user's
    /// top-level field is projected, so a server that flattens dotted
    /// projections still yields the token.
    @Test func aDottedUserTokenFieldSurvivesAFlatteningServer() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let proxy = try await DatabaseProxy(misbehaving: [.flattenDotted])
        defer { proxy.stop() }
        _ = try await h.store.pool.run("users") { coll in
            try CollectionOps.insert(coll, ["_id": "u1", "github": ["access": ["token": "ghp_nested"]]])
        }
        let through = JobStore(pool: try MongoPool(uri: proxy.uri, databaseName: h.dbName), logCap: 5)
        #expect(try await through.userToken(userId: "u1", collection: "users", field: "github.access.token") == "ghp_nested")
    }

    /// The watcher follows the store's collection names: a prefixed store's
    /// jobs wake it, the unprefixed `jobs` do not; its check passes.
    @Test func theWatcherWatchesTheStoresOwnCollections() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let prefixed = JobStore(pool: h.store.pool, logCap: 5, collectionPrefix: "p_")
        let watcher = ChangeWatcher(store: prefixed, markerId: "test")
        let seen = Locked<[String]>([]), state = Locked<Bool?>(nil)
        watcher.startEvents(onEvent: { e in seen.withLock { $0.append(e?["ns"]?["coll"]?.stringValue ?? "?") } },
                            onState: { ok, _ in state.withLock { $0 = ok } })
        defer { watcher.stop() }
        #expect(try await eventually(20) { state.withLock { $0 } == true }, "the check passed")
        _ = try await h.store.insertJob(projectId: "x", spec: tinySpec)
        _ = try await prefixed.insertJob(projectId: "x", spec: tinySpec)
        #expect(try await eventually(20) { seen.withLock { $0 } == ["p_jobs"] }, "\(seen.withLock { $0 })")
    }
}
