import Foundation
@testable import ChildGeneration
@testable import JobStore
import Logging
import RunnerCore
@testable import SupervisorKit
import Testing

/// Everything the agent can grow is bounded in bytes: each log line
/// (JOB_LOG_LINE_BYTES), an attempt's whole log (JOB_LOG_BYTES), the result's
/// `metadata.agent`, at the child and again at the supervisor.
@Suite struct LogBoundsTests {
    /// One letter with 30 combining accents: one character, 61 bytes.
    static let accented = "a" + String(repeating: "\u{0301}", count: 30)

    @Test func aLineIsCutInBytesOnAScalarBoundary() {
        let line = String(repeating: Self.accented, count: 200) // 200 characters, 12,200 bytes
        #expect(line.count == 200 && line.utf8.count == 12_200)
        let cut = LogBounds(lineBytes: 4096).line(line)
        #expect(cut.utf8.count <= 4096, "\(cut.utf8.count) bytes")
        #expect(cut.hasSuffix(" more bytes]") && cut.contains("…[line cut: "))
        // What is kept is a prefix of the line, cut between two scalars (valid UTF-8, no U+FFFD).
        let kept = String(cut[..<(cut.range(of: " …[line cut: ")?.lowerBound ?? cut.endIndex)])
        #expect(line.unicodeScalars.starts(with: kept.unicodeScalars) && !kept.contains("\u{FFFD}"))
        #expect(kept.utf8.count > 4000)
        // A line within the bound is untouched.
        let short = String(repeating: Self.accented, count: 60)
        #expect(LogBounds(lineBytes: 4096).line(short) == short)
        // A failure's stored message too (`error` and each `errors` entry).
        let message = JobFailure(.internal, String(repeating: Self.accented, count: 2000)).json["message"]?.stringValue ?? ""
        #expect(message.utf8.count <= JobFailure.maxStoredMessageBytes && message.hasSuffix(" more bytes]"))
    }

    @Test func anAttemptsLogStopsAtItsBytesWithOneMarker() {
        var budget = LogBudget(LogBounds(lineBytes: 4096, jobBytes: 65_536))
        let line = String(repeating: Self.accented, count: 1000)
        let kept = (0..<100).compactMap { _ in budget.admit(line) }
        #expect(kept.filter { $0.hasPrefix("[log limit reached") }.count == 1)
        #expect(kept.last?.hasPrefix("[log limit reached") == true)
        #expect(kept.reduce(0) { $0 + $1.utf8.count } <= 65_536 + 200)
        #expect(budget.dropped == 100 - kept.count + 1)
    }

    /// The supervisor does not trust the child: what it records is cut in
    /// bytes and counted again, whatever the child sent.
    @Test func theSupervisorRechecksTheLinesItRecords() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let p = try await h.store.insertProject(name: "B", repoURL: nil)
        _ = try await h.store.insertJob(projectId: p, spec: tinySpec)
        let job = try #require(try await h.store.claim(owner: "test", leaseSeconds: 3600))
        let logger = Logger(label: "test")
        let leases = LeaseKeeper(store: h.store, leaseSeconds: 60, pollSeconds: 1, logger: logger)
        let bounds = LogBounds(lineBytes: 4096, jobBytes: 262_144)
        let writes = WriteBatcher(store: h.store, leases: leases, logger: logger, logBounds: bounds)
        // 400 lines of about 116 KB of accented letters (a child that ignores its bounds).
        let line = String(repeating: Self.accented, count: 1900)
        for _ in 0..<400 { await writes.add(job, line) }
        await writes.add(job, "child exited: exited(0)", own: true)
        let lines = await writes.takeLines(job).lines
        #expect(lines.allSatisfy { $0.utf8.count <= 4096 }, "\(lines.map(\.utf8.count).max() ?? 0) bytes")
        #expect(lines.filter { $0.hasPrefix("[log limit reached") }.count == 1)
        #expect(lines.last == "child exited: exited(0)", "the supervisor's own line is kept")
        let total = lines.reduce(0) { $0 + $1.utf8.count }
        #expect(total <= 262_144 + 4096, "\(total) bytes")
        #expect(try await h.store.finish(job, .done(JobMetadata()), logs: lines))
    }

    @Test func theLogBoundsAreConfigured() throws {
        let base = ["MONGODB_URI": "mongodb://127.0.0.1:1"]
        let d = try RunnerConfiguration(environment: base)
        #expect(d.child.logBounds == LogBounds(lineBytes: 4096, jobBytes: 2 << 20))
        let set = try RunnerConfiguration(environment: base.merging(["JOB_LOG_LINE_BYTES": "1000", "JOB_LOG_BYTES": "100000"]) { $1 })
        #expect(set.child.logBounds == LogBounds(lineBytes: 1000, jobBytes: 100_000))
        for (name, value) in [("JOB_LOG_LINE_BYTES", "100"), ("JOB_LOG_LINE_BYTES", "65536"), ("JOB_LOG_BYTES", "1000"),
                              ("JOB_LOG_BYTES", "16777216")] {
            #expect(throws: ConfigurationError.self, "\(name)=\(value)") {
                try RunnerConfiguration(environment: base.merging([name: value]) { $1 })
            }
        }
        // The stored log must stay under 8 MiB: JOB_LOG_CAP × JOB_LOG_LINE_BYTES.
        #expect(throws: ConfigurationError.self) {
            try RunnerConfiguration(environment: base.merging(["JOB_LOG_CAP": "10000", "JOB_LOG_LINE_BYTES": "4096"]) { $1 })
        }
        #expect(try RunnerConfiguration(environment: base.merging(["JOB_LOG_CAP": "2048"]) { $1 }).logCap == 2048)
    }

    /// The agent's model, provider and finish reason are clipped, so the
    /// result line always fits its 64 KiB and still says success.
    @Test func anInflatedAgentReportStillFitsTheResultLine() throws {
        var agent = AgentUsage()
        agent.format = "cline-3"
        agent.model = String(repeating: Self.accented, count: 2000)
        agent.provider = String(repeating: "p", count: 100_000)
        agent.finishReason = String(repeating: "\u{1}", count: 50_000) // six bytes each once escaped
        agent.inputTokens = 5
        var meta = JobMetadata()
        meta.commitSha = "abc"
        meta.agent = agent
        let line = LineFraming.encode(.succeeded(meta))
        #expect(line.count <= LineFraming.maxLineBytes + 1, "\(line.count) bytes")
        guard case .succeeded(let m) = try JSONDecoder().decode(ChildEvent.self, from: Data(line.dropLast())) else {
            Issue.record("not a success"); return
        }
        let a = try #require(m.agent)
        for s in [a.model, a.provider, a.finishReason] { #expect((s?.utf8.count ?? 0) <= AgentUsage.maxStringBytes) }
        #expect(a.model?.hasPrefix(Self.accented) == true && a.inputTokens == 5 && m.commitSha == "abc")
        // The supervisor bounds what it receives again (a child that sent it unbounded).
        #expect((LineFraming.bounded(meta).agent?.model?.utf8.count ?? 0) <= AgentUsage.maxStringBytes)
    }

    /// Token sums saturate instead of trapping, and a cost that is not a
    /// number never makes the result unencodable.
    @Test func tokenSumsSaturateAndCostsStayFinite() throws {
        var out = ClineOutput()
        for ts in 1...3 {
            let info = #"{\"tokensIn\":9223372036854775000,\"tokensOut\":1,\"cost\":1e308}"#
            _ = out.readable(#"{"type":"say","say":"api_req_started","ts":\#(ts),"text":"\#(info)"}"#, isErr: false)
        }
        let u = out.usage
        #expect(u.inputTokens == Int.max && u.outputTokens == 3 && u.iterations == 3)
        #expect(u.cost?.isFinite == true)
        var three = ClineOutput()
        _ = three.readable(#"{"type":"run_result","finishReason":"completed","model":{"id":"m","provider":"p"},"#
            + #""usage":{"inputTokens":-5,"totalCost":"NaN"}}"#, isErr: false)
        #expect(three.usage.cost == nil && three.usage.inputTokens == 0)
        var meta = JobMetadata()
        meta.agent = u
        let line = LineFraming.encode(.succeeded(meta))
        #expect(try JSONDecoder().decode(ChildEvent.self, from: Data(line.dropLast())) == .succeeded(LineFraming.bounded(meta)))
    }
}

/// End to end: an agent that floods its log leaves a recordable job.
@Suite struct LogFloodTests {
    let clines = ClineFixture()

    /// 400 lines of about 116 KB of accented letters (46 MB of output): the
    /// job ends `done` at its first attempt, every stored line is within
    /// JOB_LOG_LINE_BYTES, the attempt's log within JOB_LOG_BYTES with one
    /// marker, and the document stays small.
    @Test func anAgentFloodingItsLogLeavesARecordableJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try clines.fakeCline(h, """
        python3 -c 'import sys
        line = ("a" + "\\u0301" * 30) * 1900
        for i in range(400):
            sys.stdout.write("%d %s\\n" % (i, line))
        '
        printf '# Flood\\n' > README.md
        echo ok > app.txt
        """)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: clines.env(cline, ["JOB_MAX_ATTEMPTS": "2", "JOB_LOG_BYTES": "262144"]),
                                        timeout: 240)
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let job = try await h.job(id)
        let logs = clines.logs(job)
        #expect(job["status"]?.stringValue == "done", "\(job["error"]?.jsonString ?? "") \(logs.suffix(5))")
        #expect(job["attempts"]?.intValue == 1)
        #expect(logs.allSatisfy { $0.utf8.count <= 4096 }, "\(logs.map(\.utf8.count).max() ?? 0) bytes")
        #expect(logs.contains { $0.utf8.starts(with: "cline: 0 a\u{0301}".utf8) }, "the agent's first line is there, cut")
        #expect(logs.filter { $0.hasPrefix("[log limit reached") }.count == 1, "\(logs.count) lines")
        let size = job.jsonString.utf8.count
        #expect(size < 400_000, "the job document is \(size) bytes")
    }

    /// A server that refuses the outcome's write as too large (BSONObjectTooLarge,
    /// 10334, from a proxy that answers so for any write carrying the agent's
    /// line): the outcome is written again without its log lines, and the
    /// supervisor says so as an error.
    @Test func anOutcomeRefusedAsTooLargeIsWrittenWithoutItsLines() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let upstream = try #require(TestEnv.mongoURI.split(separator: ":").last?.split(separator: "/").first)
        let proxy = try await FixtureServer("mongo_proxy.py", [String(upstream), "--code", "10334", "--errmsg",
                                                               "object to insert too large", "TOO-LARGE-MARKER"])
        defer { proxy.stop() }
        let cline = try clines.fakeCline(h, """
        echo TOO-LARGE-MARKER
        printf '# Large\\n' > README.md
        echo ok > app.txt
        """)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: clines.env(cline, ["MONGODB_URI": "mongodb://127.0.0.1:\(proxy.port)/?directConnection=true",
                                                                "JOB_MAX_ATTEMPTS": "1",
                                                                // The lines go with the outcome, not a progress write.
                                                                "AGENT_RUNNER_TEST_PROGRESS_MS": "600000"]),
                                        timeout: 120)
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job["error"]?.jsonString ?? "") \(r.stderr.suffix(2000))")
        #expect(!clines.logs(job).contains { $0.contains("TOO-LARGE-MARKER") })
        #expect(r.stderr.contains("the database rejected the outcome write as too large"), "\(r.stderr.suffix(2000))")
    }
}
