import Foundation
import Logging
import RunnerCore
import Testing
@testable import DashboardKit

@Suite struct ConstantTimeTests {
    @Test func equalOnlyForTheSameBytes() {
        let token = "s3cret-token-0123456789"
        #expect(ConstantTime.equals(token, token))
        #expect(ConstantTime.equals(token, String(token)))
        #expect(!ConstantTime.equals(token, "s3cret-token-012345678"))   // a prefix
        #expect(!ConstantTime.equals(token, token + "x"))                // longer
        #expect(!ConstantTime.equals(token, "S3cret-token-0123456789"))  // first byte differs
        #expect(!ConstantTime.equals(token, "s3cret-token-012345678X"))  // last byte differs
        #expect(!ConstantTime.equals(token, ""))
        #expect(ConstantTime.equals("", ""))
        // A shorter value padded with NULs must not pass as equal.
        #expect(!ConstantTime.equals([0x61, 0x00], [0x61]))
    }

    @Test func sessionsAreFoundOnlyByTheirWholeId() {
        let store = SessionStore(lifetime: 60)
        let s = store.create()
        #expect(store.session(s.id) == s)
        #expect(store.session(String(s.id.dropLast())) == nil)
        #expect(store.session(s.id + "0") == nil)
        #expect(store.session(nil) == nil)
        #expect(store.session(s.id, now: Date().addingTimeInterval(120)) == nil)  // expired
        store.remove(s.id)
        #expect(store.session(s.id) == nil)
        #expect(s.id.count == 64 && s.csrf.count == 64 && s.id != s.csrf)
    }
}

@Suite struct EscapingTests {
    @Test func interpolatedTextIsEscaped() {
        let line = "<script>alert('x')</script> & \"q\""
        let html: HTML = "<pre>\(line)</pre>"
        #expect(html.html == "<pre>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;</pre>")
        let value: JSONValue = ["code": "<b>", "message": .string("a\u{0}b")]
        let json: HTML = "\(value["code"])|\(value["message"])"
        #expect(json.html == "&lt;b&gt;|a\u{FFFD}b")
    }

    @Test func oddDocumentsRenderWithoutCrashing() {
        let session = SessionStore().create()
        let odd: [JSONValue] = [
            [:], ["_id": 42, "status": ["nested": true], "logs": "not an array", "metadata": "x", "errors": 7],
            ["_id": ["$oid": "0123456789abcdef01234567"], "status": "failed", "error": "plain string",
             "logs": [1, ["a": "<b>"], nil], "metadata": ["timings": ["generateMs": "?"], "repoUrl": "javascript:alert(1)"]],
        ]
        for doc in odd {
            let page = JobPages.job(doc, session: session).html
            #expect(page.contains("<pre id=\"log\""))
            #expect(!page.contains("<b>"))
            #expect(!page.contains("href=\"javascript:"))
        }
        #expect(QueuePages.jobTable(odd).html.contains("<table"))
    }

    @Test func aJobsPullRequestIsLinked() {
        let doc: JSONValue = ["_id": "j1", "status": "done", "metadata": ["pullRequest": [
            "number": 7, "url": "https://github.com/acme/shop/pull/7", "branch": "architex/<shop>", "base": "main",
            "action": "updated", "headSha": "c0ffee", "state": "open"]]]
        let page = JobPages.job(doc, session: SessionStore().create()).html
        #expect(page.contains("<dd id=\"job-pull-request\"><a href=\"https://github.com/acme/shop/pull/7\""), "\(page)")
        #expect(page.contains("#7 updated · architex/&lt;shop&gt; → main</dd>"), "\(page)")
    }

    @Test func aCheckpointOfAnyShapeShowsAsText() {
        let session = SessionStore().create()
        let sha = String(repeating: "c0ffee12", count: 5)
        let good: JSONValue = ["_id": "j2", "status": "failed", "metadata": ["checkpoint": [
            "branch": "agent-runner/wip/<j2>", "commitSha": .string(sha), "reason": "budget"]]]
        let page = JobPages.job(good, session: session).html
        #expect(page.contains("<span class=\"checkpoint-reason\">budget</span> · branch <code class=\"checkpoint-branch\">"
            + "agent-runner/wip/&lt;j2&gt;</code> · commit <code class=\"checkpoint-commit\" title=\"\(sha)\">c0ffee1</code>"), "\(page)")
        #expect(APIJSON.state(good)["checkpoint"] == good["metadata"]?["checkpoint"])
        // Not a commit id: shown whole; missing fields as "-"; a non-object as its JSON.
        let odd: JSONValue = ["_id": "j3", "metadata": ["checkpoint": ["commitSha": "\"><img src=x>", "reason": 3]]]
        let oddPage = JobPages.job(odd, session: session).html
        #expect(oddPage.contains("title=\"&quot;&gt;&lt;img src=x&gt;\">&quot;&gt;&lt;img src=x&gt;</code>"), "\(oddPage)")
        #expect(oddPage.contains("<span class=\"checkpoint-reason\">3</span> · branch <code class=\"checkpoint-branch\">-</code>"))
        #expect(JobPages.job(["_id": "j4", "metadata": ["checkpoint": "x"]], session: session).html.contains("id=\"job-checkpoint\""))
        for none: JSONValue in [["_id": "j5"], ["_id": "j6", "metadata": ["checkpoint": nil]]] {
            #expect(!JobPages.job(none, session: session).html.contains("checkpoint"))
            #expect(APIJSON.state(none)["checkpoint"] == nil)
        }
    }

    @Test func onlyHTTPSRemotesAreLinked() {
        #expect(Show.link("https://example.com/r.git").html.hasPrefix("<a href=\"https://example.com/r.git\""))
        #expect(Show.link("file:///srv/r.git").html == "<code>file:///srv/r.git</code>")
        #expect(Show.link("http://example.com/\"onmouseover=x").html.hasPrefix("<code>"))
    }
}

@Suite struct LiveLogTests {
    @Test func newLinesAfterAppendAndTrim() {
        #expect(Array(LogDiff.newLines(previous: [], current: ["a", "b"])) == ["a", "b"])
        #expect(Array(LogDiff.newLines(previous: ["a", "b"], current: ["a", "b", "c"])) == ["c"])
        #expect(Array(LogDiff.newLines(previous: ["a", "b"], current: ["a", "b"])) == [])
        // Capped at 3: "a" dropped from the front while "c", "d" arrived.
        #expect(Array(LogDiff.newLines(previous: ["a", "b", "c"], current: ["b", "c", "d"])) == ["d"])
        #expect(Array(LogDiff.newLines(previous: ["a", "b", "c"], current: ["c", "d", "e"])) == ["d", "e"])
        // Repeated lines: the longest overlap wins.
        #expect(Array(LogDiff.newLines(previous: ["x", "x"], current: ["x", "x", "x"])) == ["x"])
        // Nothing in common (a retry cleared it): everything is new.
        #expect(Array(LogDiff.newLines(previous: ["a", "b"], current: ["y"])) == ["y"])
    }

    /// A long, repetitive log (a capped log of one line repeated, trimmed at
    /// the front while new lines arrive): linear in the lines, counted in
    /// comparisons. Trying each overlap in turn costs about n²/4 here.
    @Test func aLongRepetitiveLogIsDiffedInLinearComparisons() {
        let n = 20_000
        let previous = Array(repeating: "building… step", count: n)
        let current = Array(repeating: "building… step", count: n / 2) + ["done"]
            + Array(repeating: "building… step", count: n / 2 - 1)
        var comparisons = 0
        let fresh = LogDiff.newLines(previous: previous, current: current, comparisons: &comparisons)
        #expect(Array(fresh) == Array(current[(n / 2)...]))
        #expect(comparisons <= 2 * (previous.count + current.count), "\(comparisons) comparisons")
        // The overlap is the longest one, however the lines repeat.
        var c = 0
        #expect(Array(LogDiff.newLines(previous: ["a", "b", "a", "b"], current: ["a", "b", "a", "b", "a"], comparisons: &c)) == ["a"])
        #expect(Array(LogDiff.newLines(previous: ["a", "b", "a"], current: ["b", "a", "b", "c"], comparisons: &c)) == ["b", "c"])
    }

    @Test func eventsAreOneLineOfJSON() {
        let e = SSE.event("log", ["line": "two\nlines\r<script>"])
        #expect(e == "event: log\ndata: {\"line\":\"two\\nlines\\r<script>\"}\n\n")
    }
}

@Suite struct RequestParsingTests {
    @Test func formsAndQueries() throws {
        let f = try FormData.parse("token=a%2Bb+c&csrf=x&csrf=y&empty=")
        #expect(f == ["token": "a+b c", "csrf": "x", "empty": ""])
        #expect(throws: BadRequest.self) { try FormData.parse("q=%zz") }
    }

    @Test func badFiltersAreRefused() throws {
        let ok = try JobsQuery(["status": "failed", "project": "p1", "q": "timeout", "page": "2"])
        #expect(ok.filter.status == "failed" && ok.page == 2 && ok.limit == 50)
        for bad in [["status": "exploded"], ["page": "0"], ["page": "x"], ["page": "10001"], ["limit": "500"],
                    ["q": String(repeating: "a", count: 201)], ["project": "a\u{1}b"]] {
            #expect(throws: BadRequest.self) { try JobsQuery(bad) }
        }
    }

    @Test func signInRedirectsOnlyToLocalPaths() {
        #expect(Dashboard.safeNext("/jobs?status=failed") == "/jobs?status=failed")
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "javascript:x", "/signin", "/a\nb"] {
            #expect(Dashboard.safeNext(bad) == "/")
        }
    }

    @Test func apiJSONIsPlain() {
        let doc: JSONValue = ["_id": ["$oid": "0123456789abcdef01234567"], "createdAt": ["$date": "2026-01-02T03:04:05Z"],
                              "n": ["$numberLong": "5"], "list": [["$oid": "aa"]]]
        let plain = APIJSON.plain(doc)
        #expect(plain["_id"] == "0123456789abcdef01234567")
        #expect(plain["createdAt"]?.stringValue?.hasPrefix("2026-01-02T03:04:05") == true)
        #expect(plain["n"] == 5)
        #expect(plain["list"] == ["aa"])
    }
}

@Suite struct ChangeHubTests {
    static let logger = Logger(label: "test")

    @Test func withoutAChangeStreamViewsArePolled() async {
        let hub = ChangeHub(pool: nil, pollInterval: .milliseconds(50), keepAlive: .seconds(3600), logger: Self.logger)
        #expect(!hub.streamUp)
        guard let stream = hub.subscribe(jobId: "a") else { Issue.record("refused"); return }
        var wakeups = 0
        for await _ in stream {
            wakeups += 1
            if wakeups == 3 { break }   // one at once, then the polling ticks
        }
        #expect(wakeups == 3)
    }

    @Test func changesWakeTheirJobsViewsAndCloseEndsThem() async {
        let hub = ChangeHub(pool: nil, pollInterval: .seconds(3600), keepAlive: .seconds(3600), capacity: 2,
                            logger: Self.logger)
        guard let a = hub.subscribe(jobId: "a"), let all = hub.subscribe(jobId: nil) else {
            Issue.record("refused"); return
        }
        #expect(hub.subscribe(jobId: "c") == nil)   // capacity
        var ia = a.makeAsyncIterator(), iall = all.makeAsyncIterator()
        _ = await ia.next(); _ = await iall.next()   // the initial wake-ups
        hub.publish(jobId: "a")
        #expect(await ia.next() != nil)
        #expect(await iall.next() != nil)
        hub.publish(jobId: "b")                      // another job: only the all-jobs view
        #expect(await iall.next() != nil)
        hub.close()
        #expect(await ia.next() == nil)              // ended: the response finishes
        #expect(await iall.next() == nil)
        #expect(hub.subscribe(jobId: "a") == nil)
        #if DEBUG // subscriberCount is a debug-build hook
        #expect(hub.subscriberCount == 0)
        #endif
    }
}
