import Foundation
import RunnerCore
import Testing
@testable import JobStore

/// The Architex web app's own documents, inserted exactly as its FastAPI
/// backend writes them (issue 14), run by the real supervisor and child.
@Suite(.serialized) struct AppDocumentTests {
    /// Inserts a raw document into `collection` of the harness's database.
    func insert(_ h: Harness, _ collection: String, _ doc: JSONValue) async throws {
        try await h.store.pool.run(collection) { try CollectionOps.insert($0, doc) }
    }

    /// The fields a job may hold after a run: what the app wrote plus the
    /// runner's documented fields (docs/contract.md).
    static let runnerFields: Set<String> = [
        "status", "stage", "logs", "metadata", "attempts", "lease", "notBefore", "error", "errors",
        "waitingForProject", "startedAt", "finishedAt", "updatedAt", "eventSeq",
    ]

    @Test func snakeCaseJobWithUuidIdsEndsDoneAndNothingUndocumentedIsWritten() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let projectId = UUID().uuidString.lowercased()
        let jobId = UUID().uuidString.lowercased()
        let now = JSONValue.date(Date())
        try await insert(h, "projects", [
            "_id": .string(projectId), "projectId": .string(projectId), "name": "Booking", "project_name": "Booking",
            "github_repo_url": .string("file://" + h.remote), "repository_url": .string("file://" + h.remote),
            "userId": "user-1", "user_id": "user-1", "created_at": now, "createdAt": now, "updated_at": now,
        ])
        var spec = try TestEnv.exampleSpec("architex-app-mixed.json").objectValue!
        spec["prompt"] = nil
        let job: JSONValue = [
            "_id": .string(jobId), "jobId": .string(jobId), "project_id": .string(projectId),
            "user_id": "user-1", "userId": "user-1", "architecture_spec": .object(spec),
            "prompt": "Hosts list rooms; guests book them.",
            "status": "pending", "logs": [], "created_at": now, "updated_at": now,
        ]
        try await insert(h, "jobs", job)
        let run = try await h.agentRunner(["run", "--exit-when-idle"])
        #expect(run.status == 0, "\(run.stderr)")
        let done = try await h.job(jobId)
        #expect(done["status"]?.stringValue == "done", "\(done.prettyString)")
        #expect(done["_id"]?.stringValue == jobId, "the uuid _id stays a string")
        let head = try await Git.run(["-C", h.remote, "rev-parse", "main"])
        #expect(done["metadata"]?["commitSha"]?.stringValue == head)
        // Only documented fields were added; none of the app's fields changed or got an alias.
        let added = Set(done.objectValue!.keys).subtracting(job.objectValue!.keys)
        #expect(added.isSubset(of: Self.runnerFields), "undocumented fields written: \(added.subtracting(Self.runnerFields))")
        for key in ["project_id", "user_id", "userId", "jobId", "prompt", "architecture_spec"] {
            #expect(done[key] == job[key], "\(key) must be left as the app wrote it")
        }
        #expect(done["created_at"]?.dateMilliseconds == job["created_at"]?.dateMilliseconds)
        #expect(done["projectId"] == nil && done["createdAt"] == nil)
        // The pushed tree follows the catalogue: starters, compose services, modules, deployment files.
        let tree = Set(try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"]).split(separator: "\n").map(String.init))
        #expect(tree.isSuperset(of: ["next-js/package.json", "fastapi/main.py", "go/go.mod", "fastapi/integrations/stripe.py",
                                     "next-js/vercel.json", ".github/workflows/ci.yml", ".env.example", "docker-compose.yml"]))
        #expect(!tree.contains { $0.hasPrefix("stripe/") || $0.hasPrefix("postgresql/Dockerfile") || $0.hasPrefix("clerk/") })
        // The job's prompt reached the brief, with the description.
        let brief = try String(contentsOfFile: h.workspace(jobId) + "/input/instructions.md", encoding: .utf8)
        #expect(brief.contains("Hosts list rooms; guests book them."))
        #expect(brief.contains("Vercel with a FastAPI API"))
        // The project (found by its uuid _id) records the success.
        let project = try await h.store.project(.string(projectId))
        #expect(project?["jobIds"]?.arrayValue == [.string(jobId)])
    }

    @Test func camelCaseJobFindsItsProjectByTheProjectIdField() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let oid = ObjectIDText.make()
        let appProjectId = UUID().uuidString.lowercased()
        let jobId = UUID().uuidString.lowercased()
        let now = JSONValue.date(Date())
        // The project's _id is an ObjectId; the job refers to its projectId field.
        try await insert(h, "projects", [
            "_id": ["$oid": .string(oid)], "projectId": .string(appProjectId), "project_name": "Shop",
            "githubRepoUrl": .string("file://" + h.remote), "userId": "user-2", "createdAt": now,
        ])
        try await insert(h, "jobs", [
            "_id": .string(jobId), "jobId": .string(jobId), "projectId": .string(appProjectId), "userId": "user-2",
            "architecture_spec": try TestEnv.exampleSpec("webapp-custom-shape.json"),
            "status": "pending", "logs": [], "createdAt": now, "updatedAt": now,
        ])
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        let done = try await h.job(jobId)
        #expect(done["status"]?.stringValue == "done", "\(done.prettyString)")
        let head = try await Git.run(["-C", h.remote, "rev-parse", "main"])
        #expect(done["metadata"]?["commitSha"]?.stringValue == head)
        // project_name names the project in the commit.
        let message = try await Git.run(["-C", h.remote, "log", "-1", "--format=%B", "main"])
        #expect(message.contains("Generate Shop from"), "\(message)")
        let project = try await h.store.project(["$oid": .string(oid)])
        #expect(project?["jobIds"]?.arrayValue == [.string(jobId)], "the success is recorded on the ObjectId project")
    }

    @Test func demoIdsOutsideThePaletteRunAndTheLogSaysHowTheyWereRead() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let projectId = UUID().uuidString.lowercased()
        try await insert(h, "projects", ["_id": .string(projectId), "name": "Demo", "github_repo_url": .string("file://" + h.remote)])
        let spec: JSONValue = [
            "name": "Demo", "description": "A demo with ids outside the palette",
            "nodes": [["id": "1", "type": "express", "data": ["label": "API", "componentId": "express", "category": "backend"]],
                      ["id": "2", "type": "postgres", "data": ["label": "Database", "componentId": "postgres", "category": "database"]],
                      ["id": "3", "type": "custom", "data": ["label": "Auth", "componentId": "auth", "category": "auth"]]],
            "edges": [["id": "a", "source": "1", "target": "2"], ["id": "b", "source": "1", "target": "3"]],
        ]
        try await insert(h, "jobs", ["_id": "demo-job", "project_id": .string(projectId), "architecture_spec": spec,
                                     "status": "pending", "logs": [], "created_at": .date(Date())])
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        let done = try await h.job("demo-job")
        #expect(done["status"]?.stringValue == "done", "\(done.prettyString)")
        let logs = done["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.contains("catalogue: node 2: 'postgres' is not a palette id; read as PostgreSQL") })
        #expect(logs.contains { $0.contains("catalogue: node 3:") && $0.contains("category 'auth'") })
        let compose = try await Git.run(["-C", h.remote, "show", "main:docker-compose.yml"])
        #expect(compose.contains("image: postgres:16"))
    }

    @Test func jobWithoutAnyProjectReferenceFailsNamingBothFields() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await insert(h, "jobs", ["_id": "lonely", "architecture_spec": tinySpec, "status": "pending",
                                     "logs": [], "created_at": .date(Date())])
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        let failed = try await h.job("lonely")
        #expect(failed["status"]?.stringValue == "failed")
        #expect(failed["error"]?["code"]?.stringValue == "invalid_spec")
        #expect(failed["error"]?["message"]?.stringValue?.contains("project_id") == true)
    }

    @Test func listingOrdersBothShapesByTheirCreationDate() async throws {
        let h = try Harness()
        let t0 = Date().addingTimeInterval(-600)
        try await insert(h, "jobs", ["_id": "camel-old", "status": "pending", "createdAt": .date(t0)])
        try await insert(h, "jobs", ["_id": "snake-mid", "status": "pending", "created_at": .date(t0.addingTimeInterval(10))])
        try await insert(h, "jobs", ["_id": "camel-new", "status": "pending", "createdAt": .date(t0.addingTimeInterval(20))])
        try await insert(h, "jobs", ["_id": "snake-new", "status": "done", "created_at": .date(t0.addingTimeInterval(30))])
        let all = try await h.store.jobs(status: nil, limit: 10).compactMap { $0["_id"]?.stringValue }
        #expect(all == ["snake-new", "camel-new", "snake-mid", "camel-old"])
        let pending = try await h.store.jobs(status: "pending", limit: 2).compactMap { $0["_id"]?.stringValue }
        #expect(pending == ["camel-new", "snake-mid"])
    }
}
