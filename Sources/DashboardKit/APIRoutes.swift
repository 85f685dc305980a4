import Foundation
import Hummingbird
import JobStore
import RunnerCore

/// The JSON API under /api/ (README: "Dashboard API") and its SSE streams.
extension Dashboard {
    func addAPIRoutes(_ router: Router<DashboardContext>) {
        router.get("/api/queue") { _, _ in
            try await self.api {
                async let counts = self.store.statusCounts()
                async let running = self.store.runningJobs()
                let c = try await counts
                return Self.json(["counts": .object(c.mapValues { .int(Int64($0)) }),
                                  "running": .array(try await running.map(APIJSON.summary)),
                                  "changeStream": .bool(self.hub.streamUp)])
            }
        }
        router.get("/api/jobs") { request, _ in
            try await self.api {
                let query = try JobsQuery(try FormData.parse(request.uri.query ?? ""))
                let docs = try await self.store.jobs(matching: query.filter, skip: (query.page - 1) * query.limit,
                                                     limit: query.limit + 1)
                return Self.json(["page": .int(Int64(query.page)), "limit": .int(Int64(query.limit)),
                                  "hasMore": .bool(docs.count > query.limit),
                                  "jobs": .array(docs.prefix(query.limit).map(APIJSON.summary))])
            }
        }
        router.get("/api/jobs/:id") { _, context in
            try await self.api {
                guard let id = PathID.valid(context.parameters.get("id")), let job = try await self.store.jobView(id) else {
                    return Self.jsonError("no job with this id", status: .notFound)
                }
                var o = APIJSON.plain(job).objectValue ?? [:]
                o["id"] = .string(JobStore.idText(job["_id"] ?? nil))
                return Self.json(.object(o))
            }
        }
        router.get("/api/jobs/:id/logs") { request, context in
            try await self.api {
                let skip = try JobsQuery.int(try FormData.parse(request.uri.query ?? "")["skip"], name: "skip",
                                             range: 0...10_000_000, default: 0)
                guard let id = PathID.valid(context.parameters.get("id")), let job = try await self.store.jobView(id) else {
                    return Self.jsonError("no job with this id", status: .notFound)
                }
                let logs = Self.logLines(job)
                var o = APIJSON.state(job)
                o["count"] = .int(Int64(logs.count))
                o["lines"] = .array(logs.dropFirst(min(skip, logs.count)).map { .string($0) })
                return Self.json(.object(o))
            }
        }
        router.get("/api/jobs/:id/live") { request, context in
            try await self.api {
                let skip = try JobsQuery.int(try FormData.parse(request.uri.query ?? "")["skip"], name: "skip",
                                             range: 0...10_000_000, default: 0)
                guard let id = PathID.valid(context.parameters.get("id")), try await self.store.jobView(id) != nil else {
                    return Self.jsonError("no job with this id", status: .notFound)
                }
                guard let wakeups = self.hub.subscribe(jobId: id) else {
                    return Self.jsonError("too many live views are open", status: .serviceUnavailable)
                }
                return Self.eventStream { send in try await self.followJob(id, skip: skip, wakeups: wakeups, send: send) }
            }
        }
        router.get("/api/events") { _, _ in
            guard let wakeups = self.hub.subscribe(jobId: nil) else {
                return Self.jsonError("too many live views are open", status: .serviceUnavailable)
            }
            return Self.eventStream { send in
                for await _ in wakeups {
                    try await send(SSE.event("change", ["changeStream": .bool(self.hub.streamUp)]))
                    // At most one event a second: changes meanwhile coalesce into the next.
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        for action in ["retry", "cancel"] {
            router.post("/api/jobs/:id/\(action)") { _, context in
                try await self.api {
                    guard let id = PathID.valid(context.parameters.get("id")) else {
                        return Self.jsonError("no job with this id", status: .notFound)
                    }
                    let outcome = action == "retry" ? try await self.store.retryJob(id) : try await self.store.cancelJob(id)
                    self.logger.notice("operator \(action) (API)", metadata: ["job": "\(id)", "result": "\(outcome.message)"])
                    switch outcome {
                    case .applied(let m): return Self.json(["ok": true, "message": .string(m)])
                    case .notFound(let m): return Self.jsonError(m, status: .notFound)
                    case .refused(let m): return Self.jsonError(m, status: .conflict)
                    }
                }
            }
        }
        router.get("/api/projects/:id") { _, context in
            try await self.api {
                guard let id = PathID.valid(context.parameters.get("id")) else {
                    return Self.jsonError("no project with this id", status: .notFound)
                }
                let view = try await self.projectView(id)
                guard view.project != nil || !view.jobs.isEmpty else {
                    return Self.jsonError("no project with this id", status: .notFound)
                }
                return Self.json(APIJSON.plain([
                    "id": .string(id), "project": view.project ?? nil,
                    "lock": view.lock.map { ["jobId": $0["jobId"] ?? nil, "expiresAt": $0["expiresAt"] ?? nil] } ?? nil,
                    "lastCommit": view.lastCommit.map { ["jobId": $0["_id"] ?? nil, "commitSha": $0["metadata"]?["commitSha"] ?? nil,
                                                          "finishedAt": $0["finishedAt"] ?? nil] } ?? nil,
                    "jobs": .array(view.jobs.map(APIJSON.summary)),
                ]))
            }
        }
        router.get("/api/runners") { _, _ in
            try await self.api {
                let runners = try await self.store.runnerLeases()
                return Self.json(["runners": .array(runners.map { r in
                    let iso = { (d: Date?) -> JSONValue in d.map { .string($0.formatted(.iso8601)) } ?? nil }
                    return ["owner": .string(r.owner), "jobs": .array(r.jobIds.map { .string($0) }),
                            "leaseExpiresAt": iso(r.leaseExpiresAt),
                            "lastHeartbeat": iso(r.leaseExpiresAt?.addingTimeInterval(-Double(self.leaseSeconds))),
                            "lastActivity": iso(r.lastActivity)]
                })])
            }
        }
    }

    /// Runs an API handler: bad input → 400, database trouble → 503, as JSON.
    func api(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch let e as BadRequest {
            return Self.jsonError(e.message, status: .badRequest)
        } catch let e as MongoError {
            logger.error("database error", metadata: ["error": "\(e)"])
            return Self.jsonError("the database did not answer", status: .serviceUnavailable)
        }
    }

    static func logLines(_ job: JSONValue) -> [String] {
        (job["logs"]?.arrayValue ?? []).map { $0.stringValue ?? $0.jsonString }
    }

    /// The per-job stream: `log` events for new lines (after the first
    /// `skip`), `stage` events when status, stage or attempts change, `end`
    /// once the job has ended. Re-reads the job at every wake-up.
    func followJob(_ id: String, skip: Int, wakeups: AsyncStream<Void>,
                   send: @Sendable (String) async throws -> Void) async throws {
        var previous: [String]?
        var lastState: [String: JSONValue]?
        var quiet = ContinuousClock.now
        for await _ in wakeups {
            let job: JSONValue?
            do { job = try await store.jobView(id) } catch {
                try await send(SSE.keepAlive)
                continue
            }
            guard let job else {
                try await send(SSE.event("end", ["status": "deleted"]))
                return
            }
            let logs = Self.logLines(job)
            let fresh = previous.map { LogDiff.newLines(previous: $0, current: logs) } ?? logs.dropFirst(min(skip, logs.count))
            previous = logs
            for line in fresh { try await send(SSE.event("log", ["line": .string(line)])) }
            let state = APIJSON.state(job)
            if state != lastState {
                try await send(SSE.event("stage", .object(state)))
                lastState = state
            }
            if JobStatus.isTerminal(job["status"]?.stringValue) {
                try await send(SSE.event("end", .object(state)))
                return
            }
            if !fresh.isEmpty || ContinuousClock.now - quiet > .seconds(10) {
                if fresh.isEmpty { try await send(SSE.keepAlive) }
                quiet = ContinuousClock.now
            }
        }
    }
}
