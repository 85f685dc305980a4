import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// Issue 13, item 5: one NDJSON framing rule for the child's emitter, the
/// supervisor's reader and the agent's output.
@Suite struct LineFramingTests {
    let max = LineFraming.maxLineBytes

    func decode(_ line: [UInt8]) throws -> ChildEvent {
        #expect(line.last == 0x0A)
        #expect(line.count <= max + 1, "a line of \(line.count) bytes")
        return try JSONDecoder().decode(ChildEvent.self, from: Data(line.dropLast()))
    }

    @Test func aOneMebibyteLogLineIsCutWithAMarker() throws {
        for filler in ["x", "\"", "\u{1}", "é"] { // plain, escaped, 6-byte escapes, 2-byte UTF-8
            let text = "start " + String(repeating: filler, count: 1 << 20)
            guard case .log(let line) = try decode(LineFraming.encode(.log(text))) else {
                Issue.record("not a log event"); continue
            }
            #expect(line.hasPrefix("start " + filler))
            #expect(line.contains("…[line cut: "), "filler \(filler.debugDescription)")
        }
        // A line within the limit is untouched.
        let short = String(repeating: "y", count: 1000)
        #expect(try decode(LineFraming.encode(.log(short))) == .log(short))
    }

    @Test func aResultAlwaysFits() throws {
        // A failure listing many files.
        let files = (0..<50_000).map { "src/module\($0)/file\($0).ts" }.joined(separator: ", ")
        let failure = JobFailure(.validationFailed, "unsafe paths: " + files, retryable: false)
        guard case .failed(let f) = try decode(LineFraming.encode(.failed(failure))) else {
            Issue.record("not a failure"); return
        }
        #expect(f.code == .validationFailed && f.retryable == false)
        #expect(f.message.hasPrefix("unsafe paths: src/module0/file0.ts") && f.message.contains("…[line cut: "))

        // A success with many files and oversized metadata.
        var meta = JobMetadata()
        meta.commitSha = String(repeating: "a", count: 40)
        meta.files = 50_000
        meta.pushSkippedReason = String(repeating: "why ", count: 100_000)
        meta.generator = String(repeating: "g", count: 200_000)
        meta.timings = Dictionary(uniqueKeysWithValues: (0..<20_000).map { ("phase\($0)Ms", $0) })
        guard case .succeeded(let m) = try decode(LineFraming.encode(.succeeded(meta))) else {
            Issue.record("not a success"); return
        }
        #expect(m.commitSha == meta.commitSha && m.files == 50_000)
        #expect((m.timings?.count ?? 0) <= LineFraming.maxTimings)
        #expect(m.pushSkippedReason?.hasPrefix("why why") == true)
        // Normal metadata is untouched.
        var normal = JobMetadata()
        normal.commitSha = "abc"
        normal.timings = ["generateMs": 5]
        #expect(try decode(LineFraming.encode(.succeeded(normal))) == .succeeded(normal))
    }

    /// The supervisor's reader: a 1 MiB line arrives once, cut, and the next line intact.
    @Test func theReaderCutsAnOverlongLineAndKeepsTheNextOne() async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let (readFD, writeFD) = (fds[0], fds[1])
        let big = [UInt8](repeating: UInt8(ascii: "z"), count: 1 << 20)
        let next = Array(#"{"type":"stage","stage":"pushing"}"#.utf8)
        Thread.detachNewThread {
            try? writeAll(writeFD, big + [0x0A] + next + [0x0A] + Array("tail without newline".utf8))
            close(writeFD)
        }
        // The reader `ChildProcess` uses (on `ChildIO`'s thread), which closes the pipe at EOF.
        let collected = Locked<[String]>([])
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            do {
                _ = try PipeLineReader(fd: readFD, emit: { line in collected.withLock { $0.append(line) } },
                                       done: { done.resume() })
            } catch {
                Issue.record("\(error)")
                done.resume()
            }
        }
        let lines = collected.withLock { $0 }
        #expect(lines.count == 3, "\(lines.count) lines")
        #expect(lines.first?.hasPrefix("zzzz") == true && lines.first?.contains("…[line cut: ") == true)
        #expect((lines.first?.utf8.count ?? 0) < max + 100)
        #expect(lines.dropFirst().first == String(decoding: next, as: UTF8.self))
        #expect(lines.last == "tail without newline")
    }

    @Test func theSplitterHandlesLinesAcrossChunks() {
        var splitter = LineSplitter(maxLineBytes: 8)
        var out: [String] = []
        for chunk in ["ab", "c\nde", "fghijklmnop", "qrs", "\nxy", "z\n", "\n"] { splitter.feed(Array(chunk.utf8)) { out.append($0) } }
        splitter.finish { out.append($0) }
        #expect(out == ["abc", "defghijk" + LineFraming.cutMarker(8), "xyz", ""])
    }

    /// End to end: an agent's 1 MiB line reaches the job's logs once, cut by the
    /// child, and the job still succeeds.
    @Test func anAgentsMebibyteLineIsLoggedOnceCut() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let clines = ClineFixture()
        let cline = try clines.fakeCline(h, """
        head -c 1048576 /dev/zero | tr '\\0' 'q'
        echo
        printf '# Long talker\\n' > README.md
        echo ok > app.txt
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: clines.env(cline)).status == 0)
        let job = try await h.job(id)
        let logs = clines.logs(job)
        #expect(job["status"]?.stringValue == "done", "\(logs.map { $0.prefix(300) }) \(job["error"]?.jsonString ?? "")")
        let long = logs.filter { $0.contains("qqqq") }
        #expect(long.count == 1, "\(long.count) log lines hold the agent's line")
        // Cut by the agent reader (a marker) or by the Cline output parser (an ellipsis).
        #expect(long.first.map { $0.contains("…[line cut: ") || $0.hasSuffix("…") } == true)
        #expect(long.allSatisfy { $0.utf8.count <= max }, "\(long.map(\.utf8.count))")
        #expect(!logs.contains { $0.hasPrefix("[child]") }, "every child line is a whole event")
    }
}
