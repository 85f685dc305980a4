import Foundation
import RunnerCore
import Testing
@testable import JobStore

/// The project-lock race (issue 13, item 1): the holder releases its lock
/// between a second job's failed acquire and that job's deferral. The
/// deferred job must still be due at once, not after LEASE_SECONDS.
@Suite struct ProjectLockRaceTests {
    /// Two claimed jobs of one project: the first holds the lock, the second failed to take it.
    func twoJobsOneLock(_ h: Harness) async throws -> (first: ClaimedJob, second: ClaimedJob, project: JSONValue) {
        try await h.store.ensureIndexes()
        let pid = try await h.store.insertProject(name: "race", repoURL: "file:///nonexistent")
        let projectId = JSONValue.string(pid)
        _ = try await h.store.insertJob(projectId: pid, spec: tinySpec)
        _ = try await h.store.insertJob(projectId: pid, spec: tinySpec)
        let first = try #require(try await h.store.claim(owner: "a", leaseSeconds: 600))
        #expect(try await h.store.acquireProjectLock(first, projectId: projectId, leaseSeconds: 600))
        let second = try #require(try await h.store.claim(owner: "b", leaseSeconds: 600))
        #expect(try await !h.store.acquireProjectLock(second, projectId: projectId, leaseSeconds: 600))
        return (first, second, projectId)
    }

    @Test func releaseBetweenFailedAcquireAndDeferLeavesTheJobDue() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (first, second, projectId) = try await twoJobsOneLock(h)
        // The holder finishes and releases now, before the second job is deferred.
        try await h.store.releaseProjectLock(first, projectId: projectId)
        #expect(try await h.store.deferForProject(second, leaseSeconds: 600))
        let doc = try await h.job(second.idText)
        #expect(doc["status"]?.stringValue == "pending")
        #expect(doc["notBefore"] == nil, "the deferred job waits for a lock nobody holds: \(doc["notBefore"] ?? .null)")
        // And it is claimable again right away.
        let again = try await h.store.claim(owner: "b", leaseSeconds: 600)
        #expect(again?.idText == second.idText)
    }

    @Test func deferWhileTheLockIsHeldWaitsForTheRelease() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let (first, second, projectId) = try await twoJobsOneLock(h)
        #expect(try await h.store.deferForProject(second, leaseSeconds: 600))
        #expect(try await h.job(second.idText)["notBefore"] != nil)
        #expect(try await h.store.claim(owner: "b", leaseSeconds: 600, busyProjects: [projectId]) == nil)
        try await h.store.releaseProjectLock(first, projectId: projectId)
        #expect(try await h.job(second.idText)["notBefore"] == nil)
    }
}
