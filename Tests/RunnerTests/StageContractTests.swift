import Foundation
import RunnerCore
import SupervisorKit
import Testing

/// Issue 13, item 11: the real job child writes `committing` before the
/// commit and `pushing` only after it, right before the push.
@Suite struct StageContractTests {
    /// Runs agent-runner-job on a ticket for `tinySpec` with the harness's remote; returns its events in order.
    func runChild(_ h: Harness, id: String) async throws -> [ChildEvent] {
        let config = try RunnerConfiguration(environment: h.environment())
        let workspace = h.workspace(id)
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        var settings = config.child
        settings.network = .none // in its own namespaces, as the supervisor runs it; a local remote needs no network
        let ticket = JobTicket(jobId: id, attempt: 1, projectName: "Stages", repoURL: "file://" + h.remote,
                               architectureSpec: tinySpec, workspace: workspace, settings: settings,
                               secrets: ChildSecrets(githubToken: nil))
        let r = try await JobChildRun.run(ticket, env: h.environment(),
                                          namespaces: Namespaces(network: true, uid: Int32(bitPattern: geteuid()),
                                                                 gid: Int32(bitPattern: getegid())))
        #expect(r.status == .exited(0), "\(r.stderr)")
        return r.events
    }

    @Test func committingPrecedesTheCommitAndPushingFollowsIt() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let events = try await runChild(h, id: "stages-1")
        func index(_ what: String, _ match: (ChildEvent) -> Bool) -> Int {
            guard let i = events.firstIndex(where: match) else { Issue.record("no \(what) in \(events)"); return -1 }
            return i
        }
        let committing = index("committing") { $0 == .stage(.committing) }
        let committed = index("the commit") { if case .log(let l) = $0 { return l.hasPrefix("committed ") }; return false }
        let pushing = index("pushing") { $0 == .stage(.pushing) }
        let pushed = index("the push") { if case .log(let l) = $0 { return l.hasPrefix("pushed ") }; return false }
        #expect(committing < committed, "committing must be written before the commit")
        #expect(committed < pushing, "pushing must come after the commit exists")
        #expect(pushing < pushed, "pushing must be written before the push")
        guard case .succeeded(let meta)? = events.last else { Issue.record("no success: \(events)"); return }
        #expect(meta.commitSha == (try await Git.run(["-C", h.remote, "rev-parse", "main"])))
    }

    @Test func aJobWithNothingToPushNeverReachesPushing() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        _ = try await runChild(h, id: "stages-2")
        // The same job again: its commit is already on the remote.
        try? FileManager.default.removeItem(atPath: h.workspace("stages-2"))
        let again = try await runChild(h, id: "stages-2")
        #expect(again.contains(.stage(.committing)))
        #expect(!again.contains(.stage(.pushing)), "\(again)")
        guard case .succeeded(let meta)? = again.last else { Issue.record("no success: \(again)"); return }
        #expect(meta.alreadyPushed == true)
    }
}
