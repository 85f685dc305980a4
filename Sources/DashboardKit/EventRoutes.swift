import Foundation
import Hummingbird
import JobStore
import RunnerCore

/// A job's event stream (`job_events`, docs/contract.md "Job events") under
/// /api/jobs/ID/events: a page as JSON, the whole stream as JSONL, and live
/// over SSE (the job's timeline).
extension Dashboard {
    /// The most events one page or one read of the live stream carries.
    static let eventsPageLimit = 1000

    func addEventRoutes(_ router: Router<DashboardContext>) {
        router.get("/api/jobs/:id/events") { request, context in
            try await self.api {
                let q = try EventsQuery(try FormData.parse(request.uri.query ?? ""))
                guard let id = PathID.valid(context.parameters.get("id")), try await self.store.jobView(id) != nil else {
                    return Self.jsonError("no job with this id", status: .notFound)
                }
                let page = try await self.store.events(jobId: id, after: q.after, kinds: q.kinds, limit: q.limit + 1)
                    .compactMap(JobEvent.init(stored:))
                let shown = page.prefix(q.limit)
                return Self.json(["jobId": .string(id), "schema": .int(Int64(JobEvent.schemaVersion)),
                                  "events": .array(shown.map { $0.apiJSON(jobId: id) }),
                                  "last": .int(Int64(shown.last?.seq ?? q.after)), "hasMore": .bool(page.count > q.limit)])
            }
        }
        router.get("/api/jobs/:id/events.jsonl") { _, context in
            try await self.api {
                guard let id = PathID.valid(context.parameters.get("id")), try await self.store.jobView(id) != nil else {
                    return Self.jsonError("no job with this id", status: .notFound)
                }
                var r = Response(status: .ok, body: ResponseBody { writer in
                    var after = 0
                    while true {
                        let page = try await self.store.events(jobId: id, after: after, limit: Self.eventsPageLimit)
                        let events = page.compactMap(JobEvent.init(stored:))
                        let text = events.map { $0.apiJSON(jobId: id).jsonString + "\n" }.joined()
                        if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                        guard page.count == Self.eventsPageLimit, let last = page.last?["seq"]?.intValue else { break }
                        after = Int(clamping: last)
                    }
                    try await writer.finish(nil)
                })
                r.headers[.contentType] = "application/x-ndjson; charset=utf-8"
                r.headers[.contentDisposition] = "attachment; filename=\"job-\(Self.fileSafe(id))-events.jsonl\""
                r.headers[.cacheControl] = "no-store"
                return r
            }
        }
        router.get("/api/jobs/:id/events/stream") { request, context in
            try await self.api {
                let q = try EventsQuery(try FormData.parse(request.uri.query ?? ""))
                guard let id = PathID.valid(context.parameters.get("id")), try await self.store.jobView(id) != nil else {
                    return Self.jsonError("no job with this id", status: .notFound)
                }
                guard let wakeups = self.hub.subscribe(jobId: id) else {
                    return Self.jsonError("too many live views are open", status: .serviceUnavailable)
                }
                return Self.eventStream { send in try await self.followEvents(id, query: q, wakeups: wakeups, send: send) }
            }
        }
    }

    /// The live stream: `event` for each stored event after `query.after`
    /// (of its kinds), re-read at every wake-up of the job (its writes go
    /// with the job's own, so a change of the job finds them stored); `end`
    /// once the job has ended and its last events were sent.
    func followEvents(_ id: String, query: EventsQuery, wakeups: AsyncStream<Void>,
                      send: @Sendable (String) async throws -> Void) async throws {
        var after = query.after
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
            // The job's state first: ended now means every event is stored.
            let ended = JobStatus.isTerminal(job["status"]?.stringValue)
            var sent = 0
            while true {
                let page = try await store.events(jobId: id, after: after, kinds: query.kinds, limit: Self.eventsPageLimit)
                for e in page.compactMap(JobEvent.init(stored:)) {
                    try await send(SSE.event("event", e.apiJSON(jobId: id)))
                    sent += 1
                }
                if let last = page.last?["seq"]?.intValue { after = Int(clamping: last) }
                if page.count < Self.eventsPageLimit { break }
            }
            if ended {
                try await send(SSE.event("end", .object(APIJSON.state(job).merging(["last": .int(Int64(after))]) { $1 })))
                return
            }
            if sent > 0 || ContinuousClock.now - quiet > .seconds(10) {
                if sent == 0 { try await send(SSE.keepAlive) }
                quiet = ContinuousClock.now
            }
        }
    }

    /// `id` with anything but letters, digits, `-` and `_` replaced (a file name in a header).
    static func fileSafe(_ id: String) -> String {
        String(id.prefix(64).map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" })
    }
}

/// The events endpoints' query: `after` (a `seq`, 0...), `kind` (a comma-separated list of kinds), `limit` (1...1000).
struct EventsQuery: Sendable {
    let after: Int
    let kinds: [String]?
    let limit: Int

    init(_ params: [String: String]) throws {
        after = try JobsQuery.int(params["after"], name: "after", range: 0...Int(Int32.max), default: 0)
        limit = try JobsQuery.int(params["limit"], name: "limit", range: 1...Dashboard.eventsPageLimit, default: 500)
        let names = (params["kind"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        for n in names where JobEvent.Kind(rawValue: n) == nil {
            throw BadRequest(message: "kind must be one of " + JobEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        kinds = names.isEmpty ? nil : Array(Set(names)).sorted()
    }
}
