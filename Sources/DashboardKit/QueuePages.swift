import Foundation
import JobStore
import RunnerCore

/// The queue overview, the jobs list and the runners page.
enum QueuePages {
    /// Counts by status and the running jobs; the script refreshes both live.
    static func queue(counts: [String: Int], running: [JSONValue], session: Session, now: Date = Date()) -> HTML {
        let cards: [HTML] = JobFilter.statuses.map { status in
            """
            <a class="count status-\(status)" href="/jobs?status=\(status)">
            <span class="n" id="count-\(status)">\(counts[status] ?? 0)</span><span class="label">\(status)</span></a>
            """
        }
        return Layout.page("Queue", session: session, active: "Queue", """
        <h1>Queue</h1>
        <section class="counts" data-live="queue">\(cards)</section>
        <h2>Running</h2>
        <table id="running">
        <thead><tr><th>Job</th><th>Project</th><th>Stage</th><th>Attempt</th><th>Elapsed</th><th>Runner</th></tr></thead>
        <tbody>\(running.map { runningRow($0, now: now) })</tbody>
        </table>
        <p class="empty" id="running-empty"\(running.isEmpty ? "" : HTML(unsafeRaw: " hidden"))>No job is running.</p>
        <p class="live" id="live-state">Live updates: connecting…</p>
        """)
    }

    static func runningRow(_ job: JSONValue, now: Date) -> HTML {
        let id = Show.id(job["_id"])
        let project = Show.project(job)
        return """
        <tr data-job="\(id)"><td><a href="/jobs/\(path: id)">\(id)</a></td>
        <td><a href="/projects/\(path: project)">\(project)</a></td>
        <td>\(job["stage"])</td><td>\(job["attempts"])</td>
        <td>\(Show.elapsed(since: job["startedAt"], now: now))</td><td>\(job["lease"]?["owner"])</td></tr>
        """
    }

    /// The filtered, paginated jobs list.
    static func jobs(_ jobs: [JSONValue], filter: JobFilter, page: Int, hasMore: Bool, session: Session) -> HTML {
        let options: [HTML] = ([""] + JobFilter.statuses).map { s in
            let selected: HTML = filter.status == s || (s.isEmpty && filter.status == nil) ? " selected" : ""
            return "<option value=\"\(s)\"\(selected)>\(s.isEmpty ? "any status" : s)</option>"
        }
        var pager: [HTML] = []
        if page > 1 { pager.append("<a rel=\"prev\" href=\"\(pageLink(filter, page - 1))\">Newer</a>") }
        pager.append("<span>Page \(page)</span>")
        if hasMore { pager.append("<a rel=\"next\" href=\"\(pageLink(filter, page + 1))\">Older</a>") }
        return Layout.page("Jobs", session: session, active: "Jobs", """
        <h1>Jobs</h1>
        <form method="get" action="/jobs" class="filters">
        <label>Status <select name="status">\(options)</select></label>
        <label>Project <input name="project" value="\(filter.projectId ?? "")" maxlength="128"></label>
        <label>Text <input name="q" value="\(filter.text ?? "")" maxlength="200" placeholder="id, error, generator, commit"></label>
        <button type="submit">Filter</button>
        </form>
        \(jobTable(jobs))
        <p class="pager">\(pager)</p>
        """)
    }

    static func pageLink(_ filter: JobFilter, _ page: Int) -> String {
        var items: [URLQueryItem] = []
        if let s = filter.status { items.append(.init(name: "status", value: s)) }
        if let p = filter.projectId { items.append(.init(name: "project", value: p)) }
        if let q = filter.text { items.append(.init(name: "q", value: q)) }
        items.append(.init(name: "page", value: "\(page)"))
        var c = URLComponents()
        c.path = "/jobs"
        c.queryItems = items
        return c.string ?? "/jobs"
    }

    /// A table of job rows (also on the project page).
    static func jobTable(_ jobs: [JSONValue]) -> HTML {
        guard !jobs.isEmpty else { return "<p class=\"empty\">No jobs match.</p>" }
        let rows: [HTML] = jobs.map { job in
            let id = Show.id(job["_id"])
            let project = Show.project(job)
            let error: HTML = job["status"]?.stringValue == "failed" ? "<code class=\"code\">\(job["error"]?["code"])</code>" : ""
            return """
            <tr data-job="\(id)"><td><a href="/jobs/\(path: id)">\(id)</a></td>
            <td><a href="/projects/\(path: project)">\(project)</a></td>
            <td>\(Show.status(job["status"]))</td><td>\(job["stage"])</td><td>\(error)</td>
            <td>\(job["attempts"])</td><td>\(job["metadata"]?["generator"])</td>\(SpendViews.cells(job))<td>\(Show.created(job))</td></tr>
            """
        }
        return """
        <table class="jobs">
        <thead><tr><th>Job</th><th>Project</th><th>Status</th><th>Stage</th><th>Error</th><th>Attempts</th>
        <th>Generator</th><th>Cost</th><th>Tokens</th><th>Created</th></tr></thead>
        <tbody>\(rows)</tbody>
        </table>
        """
    }

    /// The supervisors seen through their leases.
    static func runners(_ runners: [RunnerLease], leaseSeconds: Int, session: Session, now: Date = Date()) -> HTML {
        let rows: [HTML] = runners.map { r in
            let heartbeat = r.leaseExpiresAt.map { $0.addingTimeInterval(-Double(leaseSeconds)) }
            let stale = (r.leaseExpiresAt ?? .distantPast) < now
            let jobs: [HTML] = r.jobIds.map { "<a href=\"/jobs/\(path: $0)\">\($0)</a> " }
            return """
            <tr><td>\(r.owner)\(stale ? HTML(unsafeRaw: " <span class=\"badge status-failed\">lease expired</span>") : "")</td>
            <td>\(r.jobIds.count)</td><td>\(jobs)</td>
            <td>\(heartbeat.map { Show.timestamp($0) } ?? "-")</td>
            <td>\(r.leaseExpiresAt.map { Show.timestamp($0) } ?? "-")</td>
            <td>\(r.lastActivity.map { Show.timestamp($0) } ?? "-")</td></tr>
            """
        }
        let table: HTML = runners.isEmpty ? "<p class=\"empty\">No runner holds a lease now.</p>" : """
        <table id="runners">
        <thead><tr><th>Owner</th><th>Jobs held</th><th>Jobs</th><th>Last heartbeat (about)</th><th>Lease expires</th>
        <th>Last activity</th></tr></thead>
        <tbody>\(rows)</tbody>
        </table>
        """
        return Layout.page("Runners", session: session, active: "Runners", """
        <h1>Runners</h1>
        <p class="hint">Supervisors appear here while they hold a job's lease. The heartbeat time assumes
        LEASE_SECONDS=\(leaseSeconds), as this dashboard is configured.</p>
        \(table)
        """)
    }
}
