#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import SupervisorKit
import Testing

/// ChildProcess's stdin writer and `closeInput()`: the writer thread writes
/// to a descriptor of its own, so a descriptor number that `closeInput()`
/// freed and another `open` reused never receives the rest of the input.
@Suite struct ChildProcessInputTests {
    @Test func closingInputEarlyNeverSendsTheInputToAReusedDescriptor() async throws {
        let dir = NSTemporaryDirectory() + "child-input-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let marker = Array("TICKET-BYTES-".utf8)
        let input = Array((0..<4096).flatMap { _ in marker })
        // Many rounds: each closes the input right after the spawn, while the
        // writer thread has most likely not written yet, and at once opens a
        // file, which takes the lowest free number: the one just closed.
        for round in 0..<40 {
            let path = dir + "/reused-\(round)"
            let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exec cat >/dev/null"],
                                         environment: ["PATH": "/usr/bin:/bin"], stdin: input, keepInputOpen: true)
            child.closeInput()
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            for await _ in child.output {}
            _ = await child.waitForExit()
            close(fd)
            let landed = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
            #expect(landed.isEmpty, "round \(round): \(landed.count) bytes of the child's input went to another descriptor")
            if !landed.isEmpty { break }
        }
    }
}
