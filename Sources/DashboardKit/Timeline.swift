import Foundation
import JobStore
import RunnerCore

/// The job page's timeline (its event stream, docs/contract.md "Job events")
/// and its "changes" view (the pushed commit's files and text diffs). Every
/// value is the agent's or the job's: it reaches the page only through
/// `HTML`'s escaping interpolation; the live script (`TimelineAssets`) adds
/// events with `textContent` only.
enum Timeline {
    /// The filters: a label and the kinds it shows.
    static let groups: [(name: String, kinds: [JobEvent.Kind])] = [
        ("Stages", [.stage]),
        ("Model", [.modelRequest, .modelResponse, .providerCall, .budget]),
        ("Tools", [.toolCall, .toolResult]),
        ("Commands", [.command]),
        ("Files", [.fileWrite]),
        ("Messages", [.message]),
        ("Errors", [.error, .truncated]),
        ("Egress", [.egressAllowed, .egressDenied]),
        ("Runner", [.generator, .validation, .publish, .changes, .diff]),
    ]

    /// The most events the page shows (the live script adds the later ones; the JSONL download has all).
    static let pageEvents = 5000

    /// The timeline section: filters, running cost, counts, the events.
    static func section(jobId: String, status: String, events: [JobEvent]) -> HTML {
        let filters: [HTML] = groups.map { g in
            """
            <label><input type="checkbox" checked data-kinds="\(g.kinds.map(\.rawValue).joined(separator: " "))"> \(g.name)</label>
            """
        }
        let t = Totals(events)
        let items: [HTML] = events.map(item)
        return """
        <link rel="stylesheet" href="/assets/timeline.css">
        <section class="trajectory"><h2>Timeline</h2>
        <p class="timeline-totals">cost <strong id="timeline-cost">\(t.costText)</strong>
        · <span id="timeline-commands">\(t.commands)</span> commands (<span id="timeline-failed">\(t.failedCommands)</span> failed)
        · <span id="timeline-files">\(t.files)</span> files written
        · <span id="timeline-count">\(events.count)</span> events
        · <a href="/api/jobs/\(path: jobId)/events.jsonl" download>download (JSONL)</a></p>
        <div class="timeline-filters" id="timeline-filters">\(filters)</div>
        <ol class="timeline" id="timeline" data-job="\(jobId)" data-status="\(status)" data-last="\(events.last?.seq ?? 0)"
            data-cost="\(String(t.cost))" data-metered="\(t.metered ? "true" : "false")">\(items)</ol>
        <p class="empty" id="timeline-empty"\(events.isEmpty ? "" : " hidden" as HTML)>No events recorded for this job.</p>
        \(events.count >= pageEvents ? "<p class=\"hint\">The first \(pageEvents) events are shown; the download has them all.</p>" as HTML : "")
        </section>
        \(changes(events))
        <script src="/assets/timeline.js" defer></script>
        """
    }

    /// One event: its number, time, kind and summary; a command's exit code, a file's size.
    static func item(_ e: JobEvent) -> HTML {
        let time = e.at.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        var badge: HTML = ""
        switch e.kind {
        case .command:
            if let code = e.data["exitCode"]?.intValue {
                badge = "<span class=\"exit \(code == 0 ? "ok" : "bad")\">exit \(code)</span>"
            }
        case .toolResult, .validation:
            if e.data["ok"]?.boolValue == false { badge = "<span class=\"exit bad\">failed</span>" }
        case .egressDenied: badge = "<span class=\"exit bad\">denied</span>"
        default: break
        }
        let detail = e.data["output"]?.stringValue ?? e.data["error"]?.stringValue
        let more: HTML = e.kind == .command || e.kind == .toolResult
            ? (detail.map { "<details><summary>output</summary><pre>\($0)</pre></details>" } ?? "") : ""
        return """
        <li class="ev kind-\(e.kind.rawValue)" data-kind="\(e.kind.rawValue)" data-seq="\(e.seq ?? 0)">\
        <span class="seq">\(e.seq ?? 0)</span> <time datetime="\(time)">\(Show.timestamp(e.at))</time> \
        <span class="kind">\(e.kind.rawValue)</span> \(badge) <span class="summary">\(e.summary)</span>\(more)</li>
        """
    }

    /// The running cost and counts the totals line shows.
    struct Totals {
        var cost = 0.0
        /// True when the egress proxy metered the calls (its cost wins over the agent's own report).
        var metered = false
        var commands = 0
        var failedCommands = 0
        var files = 0

        init(_ events: [JobEvent]) {
            metered = events.contains { $0.kind == .providerCall }
            for e in events {
                switch e.kind {
                case .providerCall where metered: cost += Self.number(e.data["costUsd"])
                case .modelResponse where !metered: cost += Self.number(e.data["cost"])
                case .command:
                    commands += 1
                    if let code = e.data["exitCode"]?.intValue, code != 0 { failedCommands += 1 }
                case .fileWrite: files += 1
                default: break
                }
            }
        }

        static func number(_ v: JSONValue?) -> Double {
            switch v {
            case .double(let d)?: d.isFinite ? d : 0
            case .int(let i)?: Double(i)
            default: 0
            }
        }

        var costText: String { UsageTotals.dollars(cost) }
    }

    /// The pushed commit's files and the diff of its text files (the
    /// `changes` and `diff` events; bounded by the child: 500 files, 100
    /// diffs, 32 KiB each and 256 KiB in all).
    static func changes(_ events: [JobEvent]) -> HTML {
        guard let c = events.last(where: { $0.kind == .changes }) else { return "" }
        let files = c.data["files"]?.arrayValue ?? []
        let total = c.data["total"]?.intValue ?? Int64(files.count)
        let diffs = events.filter { $0.kind == .diff }
        let rows: [HTML] = files.map { f in
            """
            <tr><td><code>\(f["path"])</code></td><td>\(f["status"])</td><td class="num">\(f["bytes"])</td>\
            <td>\(f["binary"]?.boolValue == true ? "binary" : "text")</td></tr>
            """
        }
        let shown: [HTML] = diffs.map { d in
            let text = d.data["text"]?.stringValue ?? ""
            let lines: [HTML] = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
                let cls = line.hasPrefix("+") ? "add" : line.hasPrefix("-") ? "del" : line.hasPrefix("@@") ? "hunk" : "ctx"
                return "<span class=\"\(cls)\">\(String(line))</span>\n"
            }
            let cut: HTML = d.clipped["text"] != nil ? " (cut: \(d.data["bytes"]) bytes in all)" : ""
            return """
            <details class="diff" open><summary><code>\(d.data["path"])</code>\(cut)</summary><pre>\(lines)</pre></details>
            """
        }
        let more: HTML = total > Int64(files.count) ? "<p class=\"hint\">\(total - Int64(files.count)) more files not listed.</p>" : ""
        return """
        <section class="changes" id="changes"><h2>Changes</h2>
        <p>Commit <code>\(c.data["commit"])</code>\(c.data["parent"].map { " on <code>\(Show.text($0))</code>" as HTML } ?? "") \
        · \(total) files</p>
        <table id="changes-files"><thead><tr><th>File</th><th>Change</th><th>Bytes</th><th>Kind</th></tr></thead>
        <tbody>\(rows)</tbody></table>\(more)
        \(shown)
        </section>
        """
    }
}
