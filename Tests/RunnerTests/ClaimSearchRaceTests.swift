import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// The claim's search keeps what it learnt between claims while the change
/// stream works: an empty queue, or candidates. A change reported while a
/// search ran must not be overwritten by what that search read before it.
@Suite struct ClaimSearchRaceTests {
    @Test func aJobInsertedWhileTheSearchFoundNothingIsClaimedByTheNext() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let store = h.store
        store.setClaimQueueWatched(true)
        let project = try await store.insertProject(name: "Race", repoURL: nil)
        let inserted = Locked<String?>(nil)
        // A search that finds the queue empty; while it runs (here: in its last
        // read, the sorted fallback), a job is inserted and the stream reports it.
        let first = try await store.pool.run(store.jobsName) { coll in
            try store.claimSearch.next(coll, now: Date(), busy: [], tryClaim: { _, _ in nil }, fallback: {
                let id = "inserted-during-the-search"
                try CollectionOps.insert(coll, ["_id": .string(id), "projectId": .string(project),
                                                "architecture_spec": tinySpec, "status": "pending",
                                                "createdAt": .date(Date())])
                inserted.withLock { $0 = id }
                store.claimQueueChanged()
                return nil
            })
        }
        #expect(first == nil)
        #expect(inserted.withLock { $0 } != nil)
        // The next claim must search again and find it (not trust "the queue is empty").
        let next = try await store.claim(owner: "test", leaseSeconds: 3600)
        #expect(next?.idText == inserted.withLock { $0 }, "the search took the queue for empty after the change was reported")
    }
}
