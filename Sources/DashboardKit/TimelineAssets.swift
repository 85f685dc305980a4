import RunnerCore

/// The job timeline's stylesheet and script (`Timeline`), served under
/// /assets/ like the dashboard's own (no inline script or style: the CSP
/// allows `self` only). The script follows a running job's event stream
/// (`GET /api/jobs/ID/events/stream`) and appends each event with
/// `textContent` only: nothing the agent wrote is ever parsed as HTML.
enum TimelineAssets {
    static let css = #"""
    .timeline-totals { margin: .2rem 0 .6rem; }
    .timeline-filters { display: flex; flex-wrap: wrap; gap: .4rem 1rem; margin-bottom: .6rem; font-size: .9rem; color: var(--muted); }
    ol.timeline { list-style: none; margin: 0; padding: .4rem .6rem; background: var(--card); border: 1px solid var(--line);
                  border-radius: 8px; max-height: 36rem; overflow: auto; font-size: .88rem; }
    ol.timeline li.ev { padding: .15rem 0; border-bottom: 1px solid #f0f2f5; overflow-wrap: anywhere; }
    ol.timeline li.ev[hidden] { display: none; }
    ol.timeline .seq { display: inline-block; min-width: 2.6rem; color: var(--muted); text-align: right; font-variant-numeric: tabular-nums; }
    ol.timeline time { color: var(--muted); font-size: .8rem; }
    ol.timeline .kind { display: inline-block; min-width: 7.5rem; padding: 0 .4rem; border-radius: 4px; background: #eef2f8;
                        font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .8rem; }
    ol.timeline .kind-command .kind, ol.timeline .kind-tool_call .kind, ol.timeline .kind-tool_result .kind { background: #e6f0ff; }
    ol.timeline .kind-file_write .kind { background: #e8f3ec; }
    ol.timeline .kind-error .kind, ol.timeline .kind-egress_denied .kind, ol.timeline .kind-truncated .kind { background: #fdecea; }
    ol.timeline .kind-model_request .kind, ol.timeline .kind-model_response .kind, ol.timeline .kind-provider_call .kind { background: #f3ecfb; }
    ol.timeline .exit { font-size: .78rem; font-weight: 600; padding: 0 .35rem; border-radius: 999px; color: #fff; }
    ol.timeline .exit.ok { background: var(--done); } ol.timeline .exit.bad { background: var(--failed); }
    ol.timeline details pre, .changes pre { background: #12161f; color: #dfe6f3; padding: .5rem .8rem; border-radius: 6px;
                  max-height: 20rem; overflow: auto; font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre-wrap; }
    .changes details.diff { margin: .5rem 0; }
    .changes pre .add { color: #8fdc9c; } .changes pre .del { color: #ff9a92; } .changes pre .hunk { color: #8ab4ff; }
    """#

    static let js = #"""
    (function () {
      "use strict";
      var list = document.getElementById("timeline");
      if (!list) { return; }
      var terminal = [\#(Assets.terminalStatuses)];
      var filters = document.querySelectorAll("#timeline-filters input[data-kinds]");
      function hiddenKinds() {
        var h = {};
        filters.forEach(function (f) { if (!f.checked) { f.dataset.kinds.split(" ").forEach(function (k) { h[k] = true; }); } });
        return h;
      }
      function applyFilters() {
        var h = hiddenKinds();
        list.querySelectorAll("li.ev").forEach(function (li) { li.hidden = !!h[li.dataset.kind]; });
      }
      filters.forEach(function (f) { f.addEventListener("change", applyFilters); });

      var last = parseInt(list.dataset.last, 10) || 0;
      var cost = parseFloat(list.dataset.cost) || 0, metered = list.dataset.metered === "true";
      function el(id) { return document.getElementById(id); }
      function bump(id) { var e = el(id); e.textContent = String((parseInt(e.textContent, 10) || 0) + 1); }
      function span(cls, text) { var s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }
      function number(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

      function add(e) {
        if (!e || typeof e.seq !== "number" || e.seq <= last) { return; }
        last = e.seq;
        var d = e.data || {};
        var li = document.createElement("li");
        li.className = "ev kind-" + String(e.kind).replace(/[^a-z_]/g, "");
        li.dataset.kind = e.kind;
        li.dataset.seq = String(e.seq);
        li.appendChild(span("seq", String(e.seq)));
        li.appendChild(document.createTextNode(" "));
        var t = document.createElement("time");
        t.dateTime = e.at; t.textContent = String(e.at).replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
        li.appendChild(t);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(span("kind", e.kind));
        li.appendChild(document.createTextNode(" "));
        if (e.kind === "command" && typeof d.exitCode === "number") {
          li.appendChild(span("exit " + (d.exitCode === 0 ? "ok" : "bad"), "exit " + d.exitCode));
          li.appendChild(document.createTextNode(" "));
        } else if ((e.kind === "tool_result" || e.kind === "validation") && d.ok === false) {
          li.appendChild(span("exit bad", "failed")); li.appendChild(document.createTextNode(" "));
        } else if (e.kind === "egress_denied") {
          li.appendChild(span("exit bad", "denied")); li.appendChild(document.createTextNode(" "));
        }
        li.appendChild(span("summary", e.summary || ""));
        if (e.kind === "provider_call") {
          if (!metered) { metered = true; cost = 0; }
          cost += number(d.costUsd);
        } else if (e.kind === "model_response" && !metered) {
          cost += number(d.cost);
        } else if (e.kind === "command") {
          bump("timeline-commands");
          if (typeof d.exitCode === "number" && d.exitCode !== 0) { bump("timeline-failed"); }
        } else if (e.kind === "file_write") {
          bump("timeline-files");
        }
        el("timeline-cost").textContent = "$" + cost.toFixed(4);
        bump("timeline-count");
        el("timeline-empty").hidden = true;
        li.hidden = !!hiddenKinds()[e.kind];
        var atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
        list.appendChild(li);
        if (atEnd) { list.scrollTop = list.scrollHeight; }
      }

      if (terminal.indexOf(list.dataset.status) >= 0 || !window.EventSource) { return; }
      var base = "/api/jobs/" + encodeURIComponent(list.dataset.job) + "/events/stream?after=";
      function connect() {
        var es = new EventSource(base + last);
        es.addEventListener("event", function (m) { add(JSON.parse(m.data)); });
        es.addEventListener("end", function () { es.close(); list.dataset.status = "ended"; });
        // Reconnect from the last event shown (the browser's own retry would start from the first URL's).
        es.onerror = function () { es.close(); if (list.dataset.status !== "ended") { setTimeout(connect, 2000); } };
      }
      connect();
    })();
    """#
}
