import Foundation
import Hummingbird
import JobStore
import RunnerCore

/// The HTML pages: sign-in, queue, jobs, job, project, runners.
extension Dashboard {
    func addPageRoutes(_ router: Router<DashboardContext>) {
        router.get("/signin") { request, context in
            if self.sessions.session(request.cookies[Self.sessionCookie]?.value) != nil { return Self.redirect("/") }
            let next = (try? FormData.parse(request.uri.query ?? ""))?["next"] ?? "/"
            return self.signInForm(request, next: next, failed: false, status: .ok)
        }
        router.post("/signin") { request, context in try await self.signIn(request) }
        router.post("/signout") { request, context in
            if let id = request.cookies[Self.sessionCookie]?.value { self.sessions.remove(id) }
            var r = Self.redirect("/signin")
            r.setCookie(Cookie(name: Self.sessionCookie, value: "", maxAge: 0, path: "/", secure: false, httpOnly: true,
                               sameSite: .strict))
            return r
        }
        router.get("/") { request, context in
            try await self.page(context) { session in
                async let counts = self.store.statusCounts()
                async let running = self.store.runningJobs()
                return Self.html(QueuePages.queue(counts: try await counts, running: try await running, session: session))
            }
        }
        router.get("/jobs") { request, context in
            try await self.page(context) { session in
                let query = try JobsQuery(try FormData.parse(request.uri.query ?? ""))
                let docs = try await self.store.jobs(matching: query.filter, skip: (query.page - 1) * query.limit,
                                                     limit: query.limit + 1)
                return Self.html(QueuePages.jobs(Array(docs.prefix(query.limit)), filter: query.filter, page: query.page,
                                                 hasMore: docs.count > query.limit, session: session))
            }
        }
        router.get("/jobs/:id") { request, context in
            try await self.page(context) { session in
                guard let id = PathID.valid(context.parameters.get("id")), let job = try await self.store.jobView(id) else {
                    return Self.notFound("No job has this id.", session: session)
                }
                // The job's event stream, as far as the page shows it (the rest: the JSONL download).
                let events = try await self.store.events(jobId: id, after: 0, limit: Timeline.pageEvents)
                    .compactMap(JobEvent.init(stored:))
                let trajectory = Timeline.section(jobId: id, status: job["status"]?.stringValue ?? "", events: events)
                // A malformed `budget` (the job failed `invalid_spec`) shows the operator's limits.
                let budget = (try? self.spend.budget(for: Job(job))) ?? self.spend.budget
                var page = JobPages.job(job, session: session, trajectory: trajectory,
                                        spend: SpendViews.section(job, budget: budget))
                if let notice = (try? FormData.parse(request.uri.query ?? ""))?["notice"], let text = Self.notices[notice] {
                    page = HTML(unsafeRaw: page.html.replacingOccurrences(
                        of: "<div class=\"actions\">", with: "<p class=\"notice\" role=\"status\">\(HTML.escape(text))</p><div class=\"actions\">"))
                }
                return Self.html(page)
            }
        }
        for action in ["retry", "cancel"] {
            router.post("/jobs/:id/\(action)") { request, context in
                try await self.page(context) { session in
                    guard let id = PathID.valid(context.parameters.get("id")) else {
                        return Self.notFound("No job has this id.", session: session)
                    }
                    let outcome = action == "retry" ? try await self.store.retryJob(id) : try await self.store.cancelJob(id)
                    self.logger.notice("operator \(action)", metadata: ["job": "\(id)", "result": "\(outcome.message)"])
                    switch outcome {
                    case .applied:
                        return Self.redirect("/jobs/\(Self.pathSegment(id))?notice=\(action == "retry" ? "retried" : "cancel")")
                    case .notFound(let m):
                        return Self.notFound(m, session: session)
                    case .refused(let m):
                        return Self.html(Layout.error("Not possible now", m, session: session), status: .conflict)
                    }
                }
            }
        }
        router.get("/projects/:id") { request, context in
            try await self.page(context) { session in
                guard let id = PathID.valid(context.parameters.get("id")) else {
                    return Self.notFound("No project has this id.", session: session)
                }
                let view = try await self.projectView(id)
                guard view.project != nil || !view.jobs.isEmpty else {
                    return Self.notFound("No project has this id.", session: session)
                }
                return Self.html(JobPages.project(id: id, project: view.project, lock: view.lock, lastCommit: view.lastCommit,
                                                  jobs: view.jobs, session: session))
            }
        }
        router.get("/runners") { request, context in
            try await self.page(context) { session in
                Self.html(QueuePages.runners(try await self.store.runnerLeases(), leaseSeconds: self.leaseSeconds,
                                             session: session))
            }
        }
    }

    static let notices = ["retried": "The job is pending again.", "cancel": "Cancellation requested."]

    static func pathSegment(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? ""
    }

    static func notFound(_ message: String, session: Session?) -> Response {
        html(Layout.error("Not found", message, session: session), status: .notFound)
    }

    /// Runs a page handler with the session; bad input → 400, database trouble → 503.
    func page(_ context: DashboardContext, _ body: (Session) async throws -> Response) async throws -> Response {
        guard let session = context.session else {
            return Self.html(Layout.error("Sign in first", "This page needs a signed-in session.", session: nil),
                             status: .unauthorized)
        }
        do {
            return try await body(session)
        } catch let e as BadRequest {
            return Self.html(Layout.error("Bad request", e.message, session: session), status: .badRequest)
        } catch let e as MongoError {
            logger.error("database error", metadata: ["error": "\(e)"])
            return Self.html(Layout.error("Database unavailable", "The database did not answer; try again shortly.",
                                          session: session), status: .serviceUnavailable)
        }
    }

    struct ProjectView {
        let project: JSONValue?
        let lock: JSONValue?
        let lastCommit: JSONValue?
        let jobs: [JSONValue]
    }

    func projectView(_ id: String) async throws -> ProjectView {
        async let project = store.project(.string(id))
        async let lock = store.projectLock(id)
        async let last = store.lastSuccessfulCommit(id)
        async let jobs = store.jobs(matching: try JobFilter(projectId: id), skip: 0, limit: 50)
        return ProjectView(project: try await project, lock: try await lock, lastCommit: try await last, jobs: try await jobs)
    }

    // MARK: sign-in

    /// The sign-in page. Its CSRF token is kept in a cookie and reused while
    /// that cookie lives, so a second sign-in page (another tab, a redirected
    /// favicon request) does not invalidate the first one's form.
    func signInForm(_ request: Request, next: String, failed: Bool, status: HTTPResponse.Status) -> Response {
        let existing = request.cookies[Self.signInCookie]?.value
        let csrf = existing.flatMap { $0.count == 64 && $0.allSatisfy(\.isHexDigit) ? $0 : nil } ?? randomToken()
        var r = Self.html(Layout.signIn(csrf: csrf, next: Self.safeNext(next), failed: failed), status: status)
        r.setCookie(Cookie(name: Self.signInCookie, value: csrf, maxAge: 3600, path: "/signin", secure: false,
                           httpOnly: true, sameSite: .strict))
        return r
    }

    func signIn(_ request: Request) async throws -> Response {
        var request = request
        let form: [String: String]
        do { form = try await Self.form(&request) } catch {
            return signInForm(request, next: "/", failed: true, status: .badRequest)
        }
        let next = form["next"] ?? "/"
        // Double-submit check: the form's token must match its cookie.
        guard let presented = form["csrf"], let cookie = request.cookies[Self.signInCookie]?.value,
              ConstantTime.equals(presented, cookie) else {
            logger.warning("sign-in refused: missing or wrong CSRF token")
            return Self.html(Layout.error("Refused", "The sign-in form had expired. Reload it and try again.",
                                          session: nil), status: .forbidden)
        }
        guard ConstantTime.equals(form["token"] ?? "", token) else {
            logger.warning("sign-in refused: wrong token")
            // Slows guessing down; the comparison itself reveals nothing.
            try? await Task.sleep(for: .milliseconds(300))
            return signInForm(request, next: next, failed: true, status: .unauthorized)
        }
        let session = sessions.create()
        logger.info("operator signed in")
        let secure = request.headers[HeaderName("X-Forwarded-Proto")!]?.lowercased() == "https"
        var r = Self.redirect(Self.safeNext(next))
        r.setCookie(Cookie(name: Self.sessionCookie, value: session.id, maxAge: Int(sessions.lifetime), path: "/",
                           secure: secure, httpOnly: true, sameSite: .strict))
        r.setCookie(Cookie(name: Self.signInCookie, value: "", maxAge: 0, path: "/signin", secure: secure,
                           httpOnly: true, sameSite: .strict))
        return r
    }

    /// Only a local path may follow sign-in (no open redirect).
    static func safeNext(_ next: String) -> String {
        guard next.hasPrefix("/"), !next.hasPrefix("//"), !next.contains("\\"), !next.hasPrefix("/signin"),
              !next.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return "/" }
        return next
    }
}
