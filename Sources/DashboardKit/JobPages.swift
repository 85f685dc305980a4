import Foundation
import JobStore
import RunnerCore

/// The job page and the project page.
enum JobPages {
    /// The pipeline's stages, in order.
    static let stages = ["claimed", "preparing", "generating", "validating", "committing", "pushing", "finished"]
    /// metadata.timings keys in pipeline order (others follow, sorted).
    static let timingOrder = ["spawnMs", "sandboxMs", "generateMs", "validateMs", "publishMs", "databaseMs"]

    /// Everything about one job; the log follows live while it runs.
    /// `trajectory`: the job's timeline and changes (`Timeline.section`).
    /// `spend`: its model calls' cost and tokens and its budget bars (`SpendViews.section`).
    static func job(_ job: JSONValue, session: Session, now: Date = Date(), trajectory: HTML = "", spend: HTML = "") -> HTML {
        let id = Show.id(job["_id"])
        let status = job["status"]?.stringValue ?? "unknown"
        let logs = (job["logs"]?.arrayValue ?? []).map { $0.stringValue ?? $0.jsonString }
        let meta = job["metadata"]
        var actions: [HTML] = []
        if [JobStatus.failed, .cancelled].map(\.rawValue).contains(status) {
            actions.append("""
            <form method="post" action="/jobs/\(path: id)/retry">\(Layout.csrfField(session))<button type="submit" id="retry">Retry</button></form>
            """)
        }
        if [JobStatus.pending, .running].map(\.rawValue).contains(status) {
            actions.append("""
            <form method="post" action="/jobs/\(path: id)/cancel">\(Layout.csrfField(session))<button type="submit" id="cancel" class="danger">Cancel</button></form>
            """)
        }
        let error: HTML
        if let e = job["error"], !e.isNull {
            error = """
            <section class="job-error" id="job-error" role="alert"><h2>Error</h2>
            <p><code class="code">\(e["code"])</code> \(e["message"])</p></section>
            """
        } else {
            error = ""
        }
        let project = Show.project(job)
        let repo = meta?["repoUrl"]?.stringValue
        return Layout.page("Job \(id)", session: session, """
        <h1>Job <code>\(id)</code></h1>
        <p class="status-line">\(Show.status(job["status"]).withID("job-status")) stage <strong id="job-stage">\(job["stage"])</strong>
        · attempt <span id="job-attempts">\(job["attempts"])</span>\(job["maxAttempts"].map { " of \(Show.text($0))" } ?? "")</p>
        <div class="actions">\(actions)</div>
        \(error)
        <section class="details"><h2>Details</h2><dl>
        <dt>Project</dt><dd><a href="/projects/\(path: project)">\(project)</a></dd>
        <dt>Generator</dt><dd>\(meta?["generator"])</dd>
        <dt>Commit</dt><dd><code id="job-commit">\(meta?["commitSha"])</code>\(meta?["branch"].map { " on \(Show.text($0))" } ?? "")</dd>
        \(checkpoint(meta?["checkpoint"]))
        <dt>Remote</dt><dd id="job-remote">\(Show.link(repo))</dd>
        \(pushNote(meta))
        \(extraMetadata(meta))
        <dt>Priority</dt><dd>\(job["priority"])</dd>
        <dt>Created</dt><dd>\(Show.created(job))</dd>
        <dt>Started</dt><dd>\(Show.time(job["startedAt"]))</dd>
        <dt>Finished</dt><dd>\(Show.time(job["finishedAt"]))</dd>
        <dt>Runner</dt><dd>\(job["lease"]?["owner"])</dd>
        </dl></section>
        \(spend)
        \(timeline(job))
        \(errorHistory(job["errors"]))
        \(trajectory)
        <section class="log"><h2>Log</h2>
        <pre id="log" data-job="\(id)" data-count="\(logs.count)" data-status="\(status)">\(logs.map { "<span class=\"line\">\($0)</span>\n" as HTML })</pre>
        <p class="live" id="live-state">\(JobStatus.isTerminal(status) ? "The job has ended." : "Live updates: connecting…")</p>
        </section>
        """)
    }

    /// metadata.checkpoint (docs/contract.md): why the run stopped, the
    /// work-in-progress branch and the commit (short; whole in `title`).
    /// Any shape renders, as text; the script fills the same fields live.
    static func checkpoint(_ value: JSONValue?) -> HTML {
        guard let value, !value.isNull else { return "" }
        let sha = Show.text(value["commitSha"])
        return """
        <dt id="job-checkpoint-label">Checkpoint</dt><dd id="job-checkpoint"><span class="checkpoint-reason">\(value["reason"])</span> · \
        branch <code class="checkpoint-branch">\(value["branch"])</code> · \
        commit <code class="checkpoint-commit" title="\(sha)">\(Show.shortSHA(sha))</code></dd>
        """
    }

    static func pushNote(_ meta: JSONValue?) -> HTML {
        guard let meta else { return "" }
        var notes: [String] = []
        if meta["pushSkipped"]?.boolValue == true { notes.append("push skipped: " + (meta["pushSkippedReason"]?.stringValue ?? "")) }
        if meta["unchanged"]?.boolValue == true { notes.append("no changes to commit") }
        if meta["alreadyPushed"]?.boolValue == true { notes.append("already pushed") }
        return notes.isEmpty ? "" : "<dt>Push</dt><dd>\(notes.joined(separator: "; "))</dd>"
    }

    /// metadata.agent (the agent's model and token usage) and the tree's size, when recorded.
    static func extraMetadata(_ meta: JSONValue?) -> HTML {
        var rows: [HTML] = []
        if let agent = meta?["agent"]?.objectValue, !agent.isEmpty {
            let order = ["model", "provider", "inputTokens", "outputTokens", "cacheReadTokens", "cacheWriteTokens",
                         "cost", "iterations", "finishReason", "durationMs", "format"]
            let keys = order.filter { agent[$0] != nil } + agent.keys.filter { !order.contains($0) }.sorted()
            let text = keys.map { "\($0) \(Show.text(agent[$0]))" }.joined(separator: " · ")
            rows.append("<dt>Agent</dt><dd id=\"job-agent\">\(text)</dd>")
        }
        if let pr = meta?["pullRequest"], pr.objectValue != nil {
            // The pull request the job opened or updated (linked when its URL is https).
            rows.append("<dt>Pull request</dt><dd id=\"job-pull-request\">\(Show.link(pr["url"]?.stringValue)) #\(pr["number"]) \(pr["action"]) · \(pr["branch"]) → \(pr["base"])</dd>")
        }
        if meta?["files"] != nil || meta?["bytes"] != nil {
            rows.append("<dt>Tree</dt><dd>\(meta?["files"]) files, \(meta?["bytes"]) bytes</dd>")
        }
        return "\(rows)"
    }

    /// The stages passed (current one marked) and metadata.timings.
    static func timeline(_ job: JSONValue) -> HTML {
        let stage = job["stage"]?.stringValue
        let status = job["status"]?.stringValue ?? ""
        let current = stage.flatMap { stages.firstIndex(of: $0) }
        // A failed or cancelled job's `finished` does not say which stages it passed.
        let ended = [JobStatus.failed, .cancelled].map(\.rawValue).contains(status) && stage == "finished"
        let items: [HTML] = stages.enumerated().map { i, s in
            var state = current.map { i < $0 ? (ended ? "ahead" : "passed") : i == $0 ? "current" : "ahead" } ?? "ahead"
            if i == current, ended { state += " end-\(status)" }
            return "<li class=\"stage \(state)\" data-stage=\"\(s)\">\(s)</li>"
        }
        let timings = job["metadata"]?["timings"]?.objectValue ?? [:]
        let keys = timingOrder.filter { timings[$0] != nil } + timings.keys.filter { !timingOrder.contains($0) }.sorted()
        let rows: [HTML] = keys.map { k in "<tr><td>\(k)</td><td class=\"num\">\(timings[k])</td></tr>" }
        let table: HTML = rows.isEmpty ? "" : """
        <table class="timings"><thead><tr><th>Phase</th><th>ms</th></tr></thead><tbody>\(rows)</tbody></table>
        """
        return """
        <section class="timeline"><h2>Stages</h2><ol class="stages" id="stages">\(items)</ol>\(table)</section>
        """
    }

    /// The `errors` array: one row per failed attempt.
    static func errorHistory(_ errors: JSONValue?) -> HTML {
        guard let list = errors?.arrayValue, !list.isEmpty else { return "" }
        let rows: [HTML] = list.map { e in
            "<tr><td>\(Show.time(e["at"]))</td><td>\(e["attempt"])</td><td><code>\(e["code"])</code></td><td>\(e["message"])</td></tr>"
        }
        return """
        <section class="errors"><h2>Attempts that failed</h2>
        <table id="errors"><thead><tr><th>At</th><th>Attempt</th><th>Code</th><th>Message</th></tr></thead>
        <tbody>\(rows)</tbody></table></section>
        """
    }

    /// A project: its lock holder, its last successful commit, its jobs.
    static func project(id: String, project: JSONValue?, lock: JSONValue?, lastCommit: JSONValue?,
                        jobs: [JSONValue], session: Session) -> HTML {
        let lockHTML: HTML
        if let lock {
            let holder = Show.id(lock["jobId"])
            lockHTML = "<a href=\"/jobs/\(path: holder)\">\(holder)</a> until \(Show.time(lock["expiresAt"]))"
        } else {
            lockHTML = "nobody"
        }
        let commitHTML: HTML
        if let lastCommit {
            let job = Show.id(lastCommit["_id"])
            commitHTML = """
            <code>\(lastCommit["metadata"]?["commitSha"])</code> by job <a href="/jobs/\(path: job)">\(job)</a>
            at \(Show.time(lastCommit["finishedAt"]))
            """
        } else {
            commitHTML = "none yet"
        }
        let missing: HTML = project == nil ? "<p class=\"hint\">No project document has this id; its jobs are listed below.</p>" : ""
        return Layout.page("Project \(id)", session: session, """
        <h1>Project \(project.flatMap { Project($0).name } ?? id)</h1>
        \(missing)
        <dl>
        <dt>Id</dt><dd><code>\(id)</code></dd>
        <dt>Repository</dt><dd>\(Show.link(project.flatMap { Project($0).repoURL }))</dd>
        <dt>Last updated</dt><dd>\(Show.time(project?["lastUpdated"]))</dd>
        <dt>Lock holder</dt><dd id="lock-holder">\(lockHTML)</dd>
        <dt>Last successful commit</dt><dd id="last-commit">\(commitHTML)</dd>
        </dl>
        <h2>Jobs</h2>
        \(QueuePages.jobTable(jobs))
        <p><a href="/jobs?project=\(path: id)">All jobs of this project</a></p>
        """)
    }
}

extension HTML {
    /// This element with an `id` added to its first tag (for badges).
    func withID(_ id: String) -> HTML {
        guard let r = html.range(of: "<span ") else { return self }
        return HTML(unsafeRaw: html.replacingCharacters(in: r, with: "<span id=\"\(HTML.escape(id))\" "))
    }
}
