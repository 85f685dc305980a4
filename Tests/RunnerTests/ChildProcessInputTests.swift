#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import SupervisorKit
import Testing

/// ChildProcess's stdin: `closeInput()` while input is still queued closes
/// the pipe only once that input is written (the child gets all of it, then
/// EOF), and a descriptor number another `open` takes meanwhile never
/// receives any of it.
@Suite struct ChildProcessInputTests {
    @Test func closingInputEarlyNeverSendsTheInputToAReusedDescriptor() async throws {
        let dir = NSTemporaryDirectory() + "child-input-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Far more than a pipe holds (64 KiB): while the child does not read,
        // the input cannot have been written when `closeInput()` runs.
        let marker = Array("TICKET-BYTES-".utf8)
        let input = Array((0..<80_000).flatMap { _ in marker })
        let go = dir + "/go", received = dir + "/received"
        let script = "while [ ! -e \(go) ]; do sleep 0.05; done; exec wc -c > \(received)"
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", script],
                                     environment: ["PATH": "/usr/bin:/bin"], stdin: input, keepInputOpen: true)
        child.closeInput()
        // New descriptors take the lowest free numbers: any the input used, if it was closed.
        var fds: [Int32] = []
        for i in 0..<4 {
            let fd = open(dir + "/reused-\(i)", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            fds.append(fd)
        }
        // Only now does the child read its stdin.
        FileManager.default.createFile(atPath: go, contents: nil)
        for await _ in child.output {}
        #expect(await child.waitForExit() == .exited(0))
        for fd in fds { close(fd) }
        for i in 0..<4 {
            let landed = (try? Data(contentsOf: URL(fileURLWithPath: dir + "/reused-\(i)"))) ?? Data()
            #expect(landed.isEmpty, "\(landed.count) bytes of the child's input went to another descriptor")
        }
        let count = (try? String(contentsOfFile: received, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(count == "\(input.count)", "the child read \(count ?? "nothing") of \(input.count) bytes, then EOF")
    }
}
