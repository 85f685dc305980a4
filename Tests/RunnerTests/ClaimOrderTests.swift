import Foundation
import RunnerCore
import Testing
@testable import JobStore

/// The claim (ClaimSearch) keeps the claim order and conditions of docs/contract.md while it
/// only scans index ranges: priority desc (none last), then createdAt asc;
/// notBefore, cancelRequested and busy projects respected; expired leases
/// recovered; odd documents still claimed; no job claimed twice.
@Suite struct ClaimOrderTests {
    func store(_ db: String) throws -> JobStore {
        JobStore(pool: try MongoPool(uri: TestEnv.mongoURI, databaseName: db), logCap: 100)
    }

    func insert(_ store: JobStore, _ id: String, priority: JSONValue? = nil, created: JSONValue?,
                extra: [String: JSONValue] = [:]) async throws {
        var doc: [String: JSONValue] = ["_id": .string(id), "projectId": .string("p-\(id)"), "status": "pending",
                                        "architecture_spec": ["nodes": [], "edges": []], "logs": []]
        if let priority { doc["priority"] = priority }
        if let created { doc["createdAt"] = created }
        for (k, v) in extra { doc[k] = v }
        let document = JSONValue.object(doc)
        try await store.pool.run("jobs") { try CollectionOps.insert($0, document) }
    }

    func claimAll(_ store: JobStore, busy: [JSONValue] = [], now: Date = Date()) async throws -> [String] {
        var ids: [String] = []
        while let job = try await store.claim(owner: "t", leaseSeconds: 3600, busyProjects: busy, now: now) {
            ids.append(job.idText)
            #expect(job.document["status"]?.stringValue == "running" && job.document["lease"]?["token"]?.stringValue == job.token)
        }
        return ids
    }

    @Test func ordersByPriorityThenAgeAndLearnsNewPriorities() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let store = h.store
        try await store.ensureIndexes()
        let t0 = Date().addingTimeInterval(-3600)
        func at(_ s: Double) -> JSONValue { .date(t0.addingTimeInterval(s)) }
        try await insert(store, "none-old", created: at(1))
        try await insert(store, "p1-new", priority: 1, created: at(50))
        try await insert(store, "p1-old", priority: 1, created: at(2))
        try await insert(store, "p5", priority: 5, created: at(30))
        try await insert(store, "none-new", created: at(40))
        try await insert(store, "neg", priority: -3, created: at(0))
        try await insert(store, "nullprio", priority: .null, created: at(20))
        try await insert(store, "cancel", priority: 9, created: at(3), extra: ["cancelRequested": true])
        try await insert(store, "later", priority: 9, created: at(3), extra: ["notBefore": .date(Date().addingTimeInterval(600))])
        try await insert(store, "busy", priority: 9, created: at(4), extra: ["projectId": "busy-project"])
        // The first claim learns the queue; later inserts are found by the gap probes.
        let first = try await store.claim(owner: "t", leaseSeconds: 3600, busyProjects: ["busy-project"])
        #expect(first?.idText == "p5")
        try await insert(store, "p3", priority: 3, created: at(100))
        try await insert(store, "p7", priority: 7, created: at(200))
        try await insert(store, "p1-oldest", priority: 1, created: at(-100))
        #expect(try await claimAll(store, busy: ["busy-project"])
            == ["p7", "p3", "p1-oldest", "p1-old", "p1-new", "neg", "none-old", "nullprio", "none-new"])
        // Once the project is free and the deferral is due, those run too; never the cancelled one.
        #if DEBUG // fallbackCount is a debug-build hook
        #expect(store.claimSearch.fallbackCount == 1, "only the empty search at the end fell back")
        #endif
        let rest = try await claimAll(store, now: Date().addingTimeInterval(601))
        #expect(rest == ["later", "busy"])
    }

    @Test func recoversExpiredLeasesAndClaimsOddDocuments() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let store = h.store
        try await store.ensureIndexes()
        let t0 = Date().addingTimeInterval(-3600)
        try await insert(store, "dead", priority: 0, created: .date(t0), extra: [
            "status": "running", "lease": ["owner": "gone", "token": "x", "expiresAt": .date(Date().addingTimeInterval(-5))]])
        try await insert(store, "alive", priority: 0, created: .date(t0), extra: [
            "status": "running", "lease": ["owner": "other", "token": "y", "expiresAt": .date(Date().addingTimeInterval(300))]])
        try await insert(store, "normal", created: .date(t0.addingTimeInterval(10)))
        try await insert(store, "no-date", created: nil)
        try await insert(store, "string-date", created: "2020-01-01")
        try await insert(store, "fraction", priority: .double(2.5), created: .date(t0))
        let claimed = try await claimAll(store)
        #expect(claimed.first == "dead")
        #expect(Set(claimed) == ["dead", "normal", "no-date", "string-date", "fraction"], "\(claimed)")
        #expect(!claimed.contains("alive"))
        #if DEBUG // fallbackCount is a debug-build hook
        #expect(store.claimSearch.fallbackCount >= 2, "a string createdAt and a fractional priority need the fallback")
        #endif
    }

    @Test func twoProcessesNeverClaimTheSameJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let a = h.store, b = try store(h.dbName)
        try await a.ensureIndexes()
        let t0 = Date().addingTimeInterval(-600)
        for i in 0..<60 {
            try await insert(a, "j\(i)", priority: i % 3 == 0 ? .int(1) : nil, created: .date(t0.addingTimeInterval(Double(i))))
        }
        async let fromA = claimAll(a)
        async let fromB = claimAll(b)
        let (x, y) = try await (fromA, fromB)
        #expect(x.count + y.count == 60)
        #expect(Set(x).isDisjoint(with: y))
    }
}

/// The Architex app's jobs carry `created_at` and `project_id` instead of
/// `createdAt` and `projectId`: the claim orders, skips and finds them alike.
@Suite struct ClaimAliasTests {
    @Test func bothDateNamesShareOneOrderWithoutTheFallback() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let store = h.store
        try await store.ensureIndexes()
        let t0 = Date().addingTimeInterval(-3600)
        func insert(_ id: String, _ fields: [String: JSONValue]) async throws {
            var doc: [String: JSONValue] = ["_id": .string(id), "status": "pending", "logs": []]
            doc.merge(fields) { $1 }
            let document = JSONValue.object(doc)
            try await store.pool.run("jobs") { try CollectionOps.insert($0, document) }
        }
        try await insert("camel-1", ["createdAt": .date(t0.addingTimeInterval(1)), "projectId": "a"])
        try await insert("snake-2", ["created_at": .date(t0.addingTimeInterval(2)), "project_id": "b"])
        try await insert("snake-busy", ["created_at": .date(t0), "project_id": "busy"])
        try await insert("camel-4", ["createdAt": .date(t0.addingTimeInterval(4)), "projectId": "c"])
        try await insert("snake-p1", ["created_at": .date(t0.addingTimeInterval(9)), "project_id": "d", "priority": 1])
        let first = try await store.claim(owner: "t", leaseSeconds: 3600, busyProjects: ["busy"])
        #expect(first?.idText == "snake-p1")
        #expect(first?.projectId == "d", "the typed job resolves project_id")
        #expect(abs((first?.job.createdAt ?? .distantPast).timeIntervalSince(t0.addingTimeInterval(9))) < 0.002)
        // Arrivals after the first claim are found by the windows, in order.
        try await insert("snake-3", ["created_at": .date(t0.addingTimeInterval(3)), "project_id": "e"])
        var order: [String] = []
        while let job = try await store.claim(owner: "t", leaseSeconds: 3600, busyProjects: ["busy"]) {
            order.append(job.idText)
        }
        #expect(order == ["camel-1", "snake-2", "snake-3", "camel-4"])
        #if DEBUG // fallbackCount is a debug-build hook
        #expect(store.claimSearch.fallbackCount == 1, "only the final empty search falls back")
        #endif
        // Once its project is free, the busy one runs.
        #expect(try await store.claim(owner: "t", leaseSeconds: 3600)?.idText == "snake-busy")
    }
}
