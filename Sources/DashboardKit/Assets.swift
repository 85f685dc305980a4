import RunnerCore

/// The dashboard's stylesheet and script, compiled into the binary (no build
/// step, no files to install). Served under /assets/ with a strict CSP, so no
/// inline script runs on any page.
enum Assets {
    static let css = #"""
    :root { --fg: #1d2330; --muted: #5b6577; --line: #d9dee7; --bg: #f6f7f9; --card: #fff; --accent: #2957c4;
            --pending: #8a6d00; --running: #1f6fd1; --done: #1d7a3a; --failed: #b3261e; --cancelled: #6b6b6b; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
    header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.5rem; background: #1d2330; color: #fff; }
    header .brand { font-weight: 700; letter-spacing: .02em; }
    header nav { display: flex; align-items: center; gap: 1rem; flex: 1; }
    header nav a { color: #cfd8ea; text-decoration: none; }
    header nav a[aria-current="page"] { color: #fff; border-bottom: 2px solid #fff; }
    header form.signout { margin-left: auto; }
    main { max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
    h1 { font-size: 1.5rem; margin: .6rem 0 1rem; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .6rem; }
    a { color: var(--accent); }
    table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); }
    th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-weight: 600; color: var(--muted); font-size: .85rem; background: #fafbfc; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; }
    code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; overflow-wrap: anywhere; }
    .counts { display: grid; grid-template-columns: repeat(5, 1fr); gap: .8rem; }
    .count { display: block; padding: .8rem 1rem; background: var(--card); border: 1px solid var(--line); border-radius: 8px;
             text-decoration: none; color: var(--fg); border-top: 4px solid var(--muted); }
    .count .n { display: block; font-size: 1.8rem; font-weight: 700; font-variant-numeric: tabular-nums; }
    .count .label { color: var(--muted); text-transform: capitalize; }
    .count.status-pending { border-top-color: var(--pending); } .count.status-running { border-top-color: var(--running); }
    .count.status-done { border-top-color: var(--done); } .count.status-failed { border-top-color: var(--failed); }
    .count.status-cancelled { border-top-color: var(--cancelled); }
    .badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .8rem; font-weight: 600; color: #fff; background: var(--muted); }
    .badge.status-pending { background: var(--pending); } .badge.status-running { background: var(--running); }
    .badge.status-done { background: var(--done); } .badge.status-failed { background: var(--failed); }
    .badge.status-cancelled { background: var(--cancelled); }
    .status-line { font-size: 1.05rem; }
    .actions { display: flex; gap: .6rem; margin: .6rem 0; }
    button { font: inherit; padding: .35rem .9rem; border-radius: 6px; border: 1px solid #b8c0cc; background: #fff; cursor: pointer; }
    button:hover { background: #eef2f8; } button.danger { color: var(--failed); border-color: var(--failed); }
    header button { background: transparent; color: #cfd8ea; border-color: #4b5568; }
    .job-error { background: #fdecea; border: 1px solid #f3b6b0; border-radius: 8px; padding: .2rem 1rem .6rem; }
    .job-error h2 { margin-top: .6rem; color: var(--failed); }
    .error { color: var(--failed); }
    dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; background: var(--card);
         border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; margin: 0; }
    dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
    ol.stages { display: flex; flex-wrap: wrap; gap: .3rem; list-style: none; padding: 0; margin: 0 0 .8rem; }
    ol.stages li { padding: .2rem .7rem; border-radius: 999px; border: 1px solid var(--line); color: var(--muted); background: var(--card); }
    ol.stages li.passed { color: var(--done); border-color: var(--done); }
    ol.stages li.current { color: #fff; background: var(--running); border-color: var(--running); }
    ol.stages li.current.end-failed { background: var(--failed); border-color: var(--failed); }
    ol.stages li.current.end-cancelled { background: var(--cancelled); border-color: var(--cancelled); }
    table.timings { width: auto; min-width: 16rem; }
    pre#log { background: #12161f; color: #dfe6f3; padding: .8rem 1rem; border-radius: 8px; max-height: 32rem; overflow: auto;
              font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
    .live, .hint, .empty { color: var(--muted); font-size: .9rem; }
    .filters { display: flex; flex-wrap: wrap; gap: .8rem; align-items: end; margin-bottom: 1rem; }
    .filters label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
    input, select { font: inherit; padding: .3rem .5rem; border: 1px solid #b8c0cc; border-radius: 6px; background: #fff; }
    .pager { display: flex; gap: 1rem; }
    .signin { max-width: 24rem; margin: 4rem auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem 1.5rem; }
    .signin form { display: flex; flex-direction: column; gap: .6rem; }
    .notice { background: #e8f3ec; border: 1px solid #b7dcc3; border-radius: 8px; padding: .5rem 1rem; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; }
    .budgets { display: flex; flex-direction: column; gap: .4rem; margin-top: .6rem; }
    .budget { display: grid; grid-template-columns: 14rem 1fr auto; gap: .6rem; align-items: center; font-size: .9rem; }
    .budget meter { width: 100%; height: 1rem; }
    .budget-high .budget-text, .budget-spent .budget-text { color: var(--failed); font-weight: 600; }
    ul.models { margin: 0; padding-left: 1.1rem; }
    """#

    /// The ended statuses as a JavaScript list's items (`JobStatus.terminal`).
    static let terminalStatuses = JobStatus.terminal.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")

    static let js = #"""
    (function () {
      "use strict";
      var meta = document.querySelector('meta[name="csrf-token"]');
      var terminal = [\#(terminalStatuses)];

      function setLive(text) { var el = document.getElementById("live-state"); if (el) { el.textContent = text; } }
      function duration(s) {
        s = Math.max(0, Math.floor(s));
        function two(n) { return (n < 10 ? "0" : "") + n; }
        if (s < 60) { return s + "s"; }
        if (s < 3600) { return Math.floor(s / 60) + "m " + two(s % 60) + "s"; }
        if (s < 86400) { return Math.floor(s / 3600) + "h " + two(Math.floor(s % 3600 / 60)) + "m"; }
        return Math.floor(s / 86400) + "d " + two(Math.floor(s % 86400 / 3600)) + "h";
      }
      function tick() {
        document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
          el.textContent = duration((Date.now() - Date.parse(el.dataset.since)) / 1000);
        });
      }
      setInterval(tick, 1000);
      function getJSON(url) {
        return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (r) { if (r.status === 401) { location.reload(); } return r.ok ? r.json() : Promise.reject(r.status); });
      }
      function cell(tr, content) { var td = document.createElement("td"); if (content instanceof Node) { td.appendChild(content); } else { td.textContent = content == null ? "-" : String(content); } tr.appendChild(td); return td; }
      function link(href, text) { var a = document.createElement("a"); a.href = href; a.textContent = text; return a; }

      // Server-Sent Events with a polling fallback: polls while the stream is down.
      function live(url, handlers, poll, interval) {
        var timer = null, failures = 0;
        function startPolling() { if (!timer) { timer = setInterval(poll, interval); poll(); } setLive("Live updates: polling every " + interval / 1000 + " s"); }
        function stopPolling() { if (timer) { clearInterval(timer); timer = null; } }
        function connect() {
          if (!window.EventSource) { startPolling(); return; }
          var es = new EventSource(url());
          es.onopen = function () { failures = 0; stopPolling(); setLive("Live updates: on"); };
          Object.keys(handlers).forEach(function (name) {
            es.addEventListener(name, function (e) { handlers[name](e.data ? JSON.parse(e.data) : null, es); });
          });
          es.onerror = function () { es.close(); failures += 1; startPolling(); if (failures < 6) { setTimeout(connect, 2000 * failures); } };
        }
        connect();
      }

      // Queue page: counts and running jobs.
      if (document.querySelector('[data-live="queue"]')) {
        var refresh = function () {
          getJSON("/api/queue").then(function (q) {
            Object.keys(q.counts).forEach(function (s) { var el = document.getElementById("count-" + s); if (el) { el.textContent = q.counts[s]; } });
            var body = document.querySelector("#running tbody");
            body.textContent = "";
            q.running.forEach(function (j) {
              var tr = document.createElement("tr");
              tr.dataset.job = j.id;
              cell(tr, link("/jobs/" + encodeURIComponent(j.id), j.id));
              cell(tr, link("/projects/" + encodeURIComponent(j.projectId || "-"), j.projectId || "-"));
              cell(tr, j.stage); cell(tr, j.attempts);
              var since = document.createElement("span");
              if (j.startedAt) { since.className = "elapsed"; since.dataset.since = j.startedAt; }
              cell(tr, since); cell(tr, j.runner);
              body.appendChild(tr);
            });
            document.getElementById("running-empty").hidden = q.running.length > 0;
            tick();
          }).catch(function () {});
        };
        live(function () { return "/api/events"; }, { change: refresh }, refresh, 5000);
      }

      // Job page: the log and the stage, live while the job has not ended.
      var log = document.getElementById("log");
      if (log && terminal.indexOf(log.dataset.status) < 0) {
        var id = log.dataset.job, count = parseInt(log.dataset.count, 10) || 0, shown = log.dataset.status;
        var append = function (line) {
          var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          var span = document.createElement("span");
          span.className = "line";
          span.textContent = line;
          log.appendChild(span);
          log.appendChild(document.createTextNode("\n"));
          count += 1;
          if (atEnd) { log.scrollTop = log.scrollHeight; }
        };
        var stage = function (s) {
          var badge = document.getElementById("job-status");
          badge.textContent = s.status; badge.className = "badge status-" + s.status;
          document.getElementById("job-stage").textContent = s.stage || "-";
          document.getElementById("job-attempts").textContent = s.attempts == null ? "-" : s.attempts;
          var passed = true;
          document.querySelectorAll("#stages li").forEach(function (li) {
            var st = li.dataset.stage;
            li.className = "stage " + (st === s.stage ? "current" : passed && s.stage ? "passed" : "ahead");
            if (st === s.stage) { passed = false; }
          });
          if (s.checkpoint) { showCheckpoint(s.checkpoint); }
          if (terminal.indexOf(s.status) >= 0 && s.status !== shown) { setLive("The job has ended."); setTimeout(function () { location.reload(); }, 1500); }
          shown = s.status;
        };
        // metadata.checkpoint, as JobPages.checkpoint renders it: the row is made when the first one arrives.
        var showCheckpoint = function (c) {
          var dd = document.getElementById("job-checkpoint");
          if (!dd) {
            var dt = document.createElement("dt");
            dt.id = "job-checkpoint-label"; dt.textContent = "Checkpoint";
            dd = document.createElement("dd");
            dd.id = "job-checkpoint";
            [["span", "checkpoint-reason", ""], ["code", "checkpoint-branch", " · branch "], ["code", "checkpoint-commit", " · commit "]]
              .forEach(function (f) {
                if (f[2]) { dd.appendChild(document.createTextNode(f[2])); }
                var el = document.createElement(f[0]); el.className = f[1]; dd.appendChild(el);
              });
            var remote = document.getElementById("job-remote").previousElementSibling;
            remote.parentNode.insertBefore(dt, remote);
            remote.parentNode.insertBefore(dd, remote);
          }
          function text(v) { return v == null ? "-" : typeof v === "string" ? v : JSON.stringify(v); }
          var sha = text(c.commitSha);
          dd.querySelector(".checkpoint-reason").textContent = text(c.reason);
          dd.querySelector(".checkpoint-branch").textContent = text(c.branch);
          var commit = dd.querySelector(".checkpoint-commit");
          commit.textContent = /^[0-9a-f]{40}$/.test(sha) ? sha.slice(0, 7) : sha;
          commit.title = sha;
        };
        var base = "/api/jobs/" + encodeURIComponent(id);
        var poll = function () {
          getJSON(base + "/logs?skip=" + count).then(function (d) { d.lines.forEach(append); stage(d); }).catch(function () {});
        };
        live(function () { return base + "/live?skip=" + count; }, {
          log: function (d) { append(d.line); },
          stage: stage,
          end: function (d, es) { es.close(); stage(d); }
        }, poll, 2000);
      }

      // Cancel asks first.
      var cancel = document.getElementById("cancel");
      if (cancel) {
        cancel.form.addEventListener("submit", function (e) { if (!window.confirm("Cancel this job?")) { e.preventDefault(); } });
      }
      if (meta) { window.agentRunnerCSRF = meta.content; }
    })();
    """#
}
