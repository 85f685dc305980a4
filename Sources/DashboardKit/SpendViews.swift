import Foundation
import JobStore
import RunnerCore

/// What jobs spend on model calls (docs/budgets.md): a job's cost and
/// tokens (the jobs list's columns, the job page's Spend section with a bar
/// per budget limit), and the spend by day and by project (`/spend`).
enum SpendViews {
    /// "$0.0123", or "?" when no call was priced, or "-" without a metered call.
    static func cost(_ usage: JSONValue?) -> String {
        guard let usage, usage.objectValue != nil else { return "-" }
        guard let cost = usage["cost"]?.numberValue, cost.isFinite else { return "?" }
        return UsageTotals.dollars(cost) + ((usage["unpricedRequests"]?.intValue ?? 0) > 0 ? "+" : "")
    }

    /// Whole tokens, grouped by thousands ("12,400"), or "-".
    static func tokens(_ usage: JSONValue?) -> String {
        guard let n = usage?["tokens"]?.intValue else { return "-" }
        return n.formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US")))
    }

    /// The jobs list's two cells.
    static func cells(_ job: JSONValue) -> HTML {
        let usage = job["metadata"]?["usage"]
        return "<td class=\"num cost\">\(cost(usage))</td><td class=\"num\">\(tokens(usage))</td>"
    }

    /// The job page's Spend section: the metered calls, by model, and one
    /// bar per limit of the job's budget (`budget`: the operator's, lowered
    /// by the job's own), marked at 50 % and 80 %.
    static func section(_ job: JSONValue, budget: JobBudget) -> HTML {
        let usage = job["metadata"]?["usage"]
        guard usage?.objectValue != nil || !budget.isEmpty else { return "" }
        var rows: [HTML] = [
            "<dt>Cost</dt><dd id=\"job-cost\">\(cost(usage))</dd>",
            "<dt>Tokens</dt><dd id=\"job-tokens\">\(tokens(usage)) (in \(usage?["inputTokens"]) · out \(usage?["outputTokens"]) · cache read \(usage?["cacheReadTokens"]) · write \(usage?["cacheWriteTokens"]))</dd>",
            "<dt>Model calls</dt><dd id=\"job-requests\">\(usage?["requests"])\(retries(usage))</dd>",
        ]
        if let models = usage?["byModel"]?.objectValue, !models.isEmpty {
            let items: [HTML] = models.sorted { $0.key < $1.key }.map { name, u in
                "<li><code>\(name)</code>: \(u["requests"]) call(s), \(tokens(u)) tokens, \(cost(u))</li>"
            }
            rows.append("<dt>By model</dt><dd><ul class=\"models\">\(items)</ul></dd>")
        }
        let bars = limits(budget, usage).map { bar($0.limit, spent: $0.spent, id: $0.id) }
        return """
        <section class="spend" id="job-spend"><h2>Spend</h2><dl>\(rows)</dl>
        \(bars.isEmpty ? "" : "<div class=\"budgets\" id=\"job-budget\">\(bars)</div>" as HTML)
        </section>
        """
    }

    static func retries(_ usage: JSONValue?) -> String {
        guard let n = usage?["retries"]?.intValue, n > 0 else { return "" }
        return " (\(n) provider retries)"
    }

    /// Each limit of `budget` with what `usage` spent of it.
    static func limits(_ budget: JobBudget, _ usage: JSONValue?) -> [(limit: BudgetLimit, spent: Double, id: String)] {
        var out: [(BudgetLimit, Double, String)] = []
        if let l = budget.usd { out.append((l, usage?["cost"]?.numberValue ?? 0, "budget-usd")) }
        if let l = budget.tokens { out.append((l, Double(usage?["tokens"]?.intValue ?? 0), "budget-tokens")) }
        if let l = budget.requests { out.append((l, Double(usage?["requests"]?.intValue ?? 0), "budget-requests")) }
        return out
    }

    /// A budget bar: a `<meter>` (no inline style: the page's CSP allows
    /// none) whose low and high marks are the 50 % and 80 % lines.
    static func bar(_ limit: BudgetLimit, spent: Double, id: String) -> HTML {
        let percent = limit.value > 0 ? Int(min(spent / limit.value * 100, 999).rounded(.down)) : 0
        let level = percent >= 100 ? "spent" : percent >= 80 ? "high" : percent >= 50 ? "half" : "low"
        let amount = { (v: Double) in limit.unit.amount(v) }
        return """
        <div class="budget budget-\(level)"><label for="\(id)">\(limit.setting)</label>
        <meter id="\(id)" min="0" max="\(String(limit.value))" low="\(String(limit.value * 0.5))" \
        high="\(String(limit.value * 0.8))" optimum="0" value="\(String(min(spent, limit.value)))" \
        data-percent="\(percent)">\(percent)%</meter>
        <span class="budget-text">\(amount(spent)) of \(amount(limit.value)) (\(percent)%)</span></div>
        """
    }

    /// The spend page: by day and by project, and the daily budgets' counters.
    static func page(_ s: SpendSummary, counters: [JSONValue], days: Int, session: Session) -> HTML {
        func table(_ id: String, _ head: String, _ rows: [SpendSummary.Row], link: Bool) -> HTML {
            guard !rows.isEmpty else { return "<p class=\"empty\">No metered job ended in these \(days) days.</p>" }
            let body: [HTML] = rows.map { r in
                let key: HTML = link && r.key != "-" ? "<a href=\"/projects/\(path: r.key)\">\(r.key)</a>" : "\(r.key)"
                let cost = UsageTotals.dollars(r.cost) + (r.unpriced > 0 ? "+" : "")
                return "<tr><td>\(key)</td><td class=\"num\">\(cost)</td><td class=\"num\">\(r.tokens)</td><td class=\"num\">\(r.requests)</td><td class=\"num\">\(r.jobs)</td></tr>"
            }
            return """
            <table id="\(id)"><thead><tr><th>\(head)</th><th>Cost</th><th>Tokens</th><th>Model calls</th><th>Jobs</th></tr></thead>
            <tbody>\(body)</tbody></table>
            """
        }
        let counterRows: [HTML] = counters.map { c in
            "<tr><td>\(c["day"])</td><td>\(c["scope"])</td><td>\(c["id"])</td><td class=\"num\">\(UsageTotals.dollars(c["usd"]?.numberValue ?? 0))</td><td class=\"num\">\(c["calls"])</td></tr>"
        }
        return Layout.page("Spend", session: session, active: "Spend", """
        <h1>Spend</h1>
        <p class="hint">Model calls metered by the jobs' egress proxies, for the jobs that ended in the last \(days) days
        (UTC; at most \(JobStore.spendJobsRead) jobs; <code>+</code>: some calls had no price). <a href="/api/spend?days=\(days)">JSON</a></p>
        <h2>By day</h2>\(table("spend-days", "Day", s.days, link: false))
        <h2>By project</h2>\(table("spend-projects", "Project", s.projects, link: true))
        <h2>Daily budgets</h2>
        \(counterRows.isEmpty ? "<p class=\"empty\">No daily budget counted (USER_DAILY_BUDGET_USD, PROJECT_DAILY_BUDGET_USD).</p>" : """
        <table id="spend-counters"><thead><tr><th>Day</th><th>Scope</th><th>Id</th><th>Spent</th><th>Calls</th></tr></thead>
        <tbody>\(counterRows)</tbody></table>
        """)
        """)
    }

    /// `/api/spend`.
    static func json(_ s: SpendSummary, counters: [JSONValue], days: Int) -> JSONValue {
        func rows(_ rows: [SpendSummary.Row], _ key: String) -> JSONValue {
            .array(rows.map { r in
                [key: .string(r.key), "cost": .double(r.cost), "tokens": .int(r.tokens), "requests": .int(r.requests),
                 "jobs": .int(Int64(r.jobs)), "jobsWithUnpricedCalls": .int(Int64(r.unpriced))]
            })
        }
        return ["days": .int(Int64(days)), "jobsRead": .int(Int64(s.jobsRead)), "byDay": rows(s.days, "day"),
                "byProject": rows(s.projects, "project"),
                "dailyBudgets": .array(counters.map { c in
                    ["scope": c["scope"] ?? nil, "id": c["id"] ?? nil, "day": c["day"] ?? nil, "usd": c["usd"] ?? nil,
                     "calls": c["calls"] ?? nil]
                })]
    }
}
