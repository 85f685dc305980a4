import Foundation
import RunnerCore
import Testing

/// What the agent produces is bounded in bytes before it leaves the job
/// child: every event's fields, arrays and whole JSON (`JobEvent.bounded`),
/// with each cut recorded, and redacted everywhere in it (`redacted`).
@Suite struct JobEventBoundsTests {
    @Test func aLongFieldIsClippedAndItsSizeRecorded() {
        let e = JobEvent.message(agent: "cline", role: "assistant", text: String(repeating: "é", count: 50_000)).bounded
        let text = e.data["text"]?.stringValue ?? ""
        #expect(text.utf8.count <= JobEvent.maxFieldBytes && text.hasPrefix("éé"))
        #expect(e.clipped["text"] == 100_000, "\(e.clipped)")
        #expect(e.encodedSize <= JobEvent.maxEncodedBytes)
    }

    @Test func escapesCannotInflateAnEventPastItsBound() {
        // 32 KiB of control characters is six times that as JSON (\u0001).
        let e = JobEvent.diff(path: "a.txt", text: String(repeating: "\u{1}", count: 32 * 1024), bytes: 32 * 1024).bounded
        #expect(e.encodedSize <= JobEvent.maxEncodedBytes, "\(e.encodedSize)")
        #expect(e.clipped["*"] != nil)
        let line = LineFraming.encode(.event(e))
        #expect(line.count <= LineFraming.maxLineBytes + 1)
    }

    /// An agent's line of short `////` strings: none is long enough to clip,
    /// and each `/` is `\/` in the JSON (64 KiB of it would be about 110 KiB):
    /// the fields are dropped, their size recorded, and the line still decodes.
    @Test func manyShortEscapedStringsCannotInflateAnEventPastItsBound() throws {
        let row = JSONValue.array(Array(repeating: "////", count: 500))
        let e = JobEvent(.message, ["role": "result", "finishReason": .array(Array(repeating: row, count: 17))])
        #expect(e.encodedSize > LineFraming.maxLineBytes, "the test's event is over a line as it is")
        let b = e.bounded
        #expect(b.encodedSize <= JobEvent.maxEncodedBytes, "\(b.encodedSize)")
        #expect((b.data["dropped"]?.intValue ?? 0) > Int64(JobEvent.maxEncodedBytes), "\(b.data.keys)")
        #expect(b.clipped["data"] == Int(b.data["dropped"]?.intValue ?? 0))
        let line = LineFraming.encode(.event(e))
        #expect(line.count <= LineFraming.maxLineBytes + 1)
        let decoded = try JSONDecoder().decode(ChildEvent.self, from: Data(line.dropLast()))
        guard case .event(let back) = decoded else { Issue.record("not an event: \(decoded)"); return }
        #expect(back.kind == .message && back.data["dropped"] != nil)
    }

    /// Keys of control characters (six bytes each as JSON), each with a long
    /// value: the keys and `clipped`'s paths alone are over the bound.
    @Test func keysOfControlCharactersCannotInflateAnEventPastItsBound() {
        var data: [String: JSONValue] = [:]
        for i in 0..<64 {
            data[String(repeating: "\u{1}", count: 60) + String(1000 + i)] = .string(String(repeating: "\u{2}", count: 5000))
        }
        let b = JobEvent(.toolCall, data).bounded
        #expect(b.encodedSize <= JobEvent.maxEncodedBytes, "\(b.encodedSize)")
        #expect(LineFraming.encode(.event(JobEvent(.toolCall, data))).count <= LineFraming.maxLineBytes + 1)
    }

    @Test func arraysAndNestingAreBounded() {
        let files = (0..<2000).map { JobEvent.ChangedFile(path: "f\($0)", status: "added", bytes: $0, binary: false) }
        let e = JobEvent.changes(commit: "c", parent: nil, files: files).bounded
        #expect(e.data["files"]?.arrayValue?.count == JobEvent.maxArrayEntries)
        #expect(e.data["total"]?.intValue == 2000)
        var deep: JSONValue = "bottom"
        for _ in 0..<10 { deep = .object(["d": deep]) }
        let nested = JobEvent(.toolCall, ["input": deep]).bounded
        #expect(!text(nested.data).contains("bottom"), "nesting is cut at depth 4")
    }

    @Test func anUnboundedEventIsBoundedOnTheWireAndDecodesAsSent() throws {
        let e = JobEvent.command(agent: "cline", command: String(repeating: "x", count: 200_000), exitCode: 2, output: "out")
        let line = LineFraming.encode(.event(e))
        #expect(line.count <= LineFraming.maxLineBytes + 1)
        let decoded = try JSONDecoder().decode(ChildEvent.self, from: Data(line.dropLast()))
        guard case .event(let back) = decoded else { Issue.record("not an event: \(decoded)"); return }
        #expect(back.kind == .command && back.data["exitCode"]?.intValue == 2 && back.clipped["command"] == 200_000)
        #expect(abs(back.at.timeIntervalSince(e.at)) < 0.002)
    }

    @Test func secretsAreRedactedWhereverTheyAre() {
        let token = "ghp_" + String(repeating: "A1", count: 18)
        let e = JobEvent.changes(commit: "c", parent: nil, files: [.init(path: "keys/\(token).txt", status: "added", bytes: 1, binary: false)])
        let r = e.redacted(Redactor(secrets: ["s3cr3t-value"]))
        #expect(!text(r.data).contains(token), "\(r.data)")
        let m = JobEvent.message(agent: "cline", role: "assistant", text: "the key is s3cr3t-value").redacted(Redactor(secrets: ["s3cr3t-value"]))
        #expect(m.data["text"] == "the key is [REDACTED]")
    }
}

private func text(_ data: [String: JSONValue]) -> String { JSONValue.object(data).jsonString }
