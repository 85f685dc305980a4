#if canImport(Glibc)
import Glibc
#endif
import ChildEgressProxy
import Foundation
import RunnerCore
import Sandbox
import Testing

/// Where a process that runs one of the handlers below writes a byte: set in
/// an exit test's own process before the handler is installed.
nonisolated(unsafe) private var markerFD: Int32 = -1
/// How many times the SIGURG handler of the connect test ran.
nonisolated(unsafe) private var interruptions: Int32 = 0

/// What runs between clone and exec, and system calls a signal interrupts.
/// Each test runs in a process of its own (an exit test): it installs signal
/// handlers, an atfork handler or the job's seccomp filter, which would bind
/// the whole test process.
@Suite struct SpawnSafetyTests {
    /// The pids of this process's children, from /proc/self/task/*/children.
    static func children() -> [pid_t] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.flatMap { tid -> [pid_t] in
            let text = (try? String(contentsOfFile: "/proc/self/task/\(tid)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
    }

    /// Polls `condition` every millisecond until it holds (true) or `seconds` pass (false).
    static func within(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            usleep(1000)
        }
        return condition()
    }

    /// Whether anything was written to the marker pipe's read end `fd`.
    static func markerWritten(_ fd: Int32) -> Bool {
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        var byte: UInt8 = 0
        return read(fd, &byte, 1) > 0
    }

    /// A signal that reaches the child between clone and exec finds the
    /// default action, never a handler of the parent (Swift code in the
    /// forked copy). The parent writes the child's pid to `cgroupProcs` before
    /// it lets the child go on; a FIFO whose buffer is full holds it there, so
    /// the signal is sent while the child waits inside that window.
    @Test func aSignalBeforeExecRunsNoHandlerOfTheParent() async {
        await #expect(processExitsWith: .exitCode(0)) {
            var marker: [Int32] = [0, 0]
            guard pipe(&marker) == 0 else { exit(10) }
            markerFD = marker[1]
            // SIGWINCH's default action is to ignore it: with the fix the child carries on to exec.
            _ = signal(SIGWINCH) { _ in
                var byte: UInt8 = 1
                _ = write(markerFD, &byte, 1)
            }
            let fifo = TestEnv.tempDir("spawn-signal") + "/hold"
            guard mkfifo(fifo, 0o600) == 0 else { exit(11) }
            let holder = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            guard holder >= 0 else { exit(12) }
            var junk = [UInt8](repeating: 0, count: 4096)
            while write(holder, &junk, junk.count) > 0 {}
            while write(holder, &junk, 1) > 0 {}
            let spawned = Locked<SpawnedProcess?>(nil)
            let done = DispatchSemaphore(value: 0)
            Thread.detachNewThread {
                var o = SpawnedProcess.Options()
                o.cgroupProcs = fifo
                let p = try? SpawnedProcess(executable: "/bin/true", arguments: [], environment: [:], options: o)
                spawned.withLock { $0 = p }
                done.signal()
            }
            // The parent cannot get past the full FIFO: a child seen now waits between clone and exec.
            var child: pid_t = 0
            guard Self.within(60, { child = Self.children().first ?? 0; return child != 0 }) else { exit(20) }
            guard kill(child, SIGWINCH) == 0 else { exit(13) }
            // Let the parent's write in (the FIFO stays open until the spawn is done: no SIGPIPE).
            while read(holder, &junk, junk.count) > 0 {}
            guard done.wait(timeout: .now() + 60) == .success else { exit(23) }
            guard let p = spawned.withLock({ $0 }) else { exit(14) }
            guard p.waitForExit().status == .exited(0) else { exit(15) }
            exit(Self.markerWritten(marker[0]) ? 3 : 0)
        }
    }

    /// Under the job's seccomp filter clone3 answers ENOSYS and the spawn
    /// falls back to clone: a raw one, not libc's fork(), whose atfork
    /// handlers run in the child of a multi-threaded process (and can
    /// deadlock on a lock another thread held).
    @Test func aSpawnUnderTheJobFilterRunsNoAtforkHandler() async {
        await #expect(processExitsWith: .exitCode(0)) {
            var marker: [Int32] = [0, 0]
            guard pipe(&marker) == 0 else { exit(10) }
            markerFD = marker[1]
            _ = pthread_atfork(nil, nil) {
                var byte: UInt8 = 1
                _ = write(markerFD, &byte, 1)
            }
            do { try SyscallFilter.install() } catch { exit(11) }
            guard let p = try? SpawnedProcess(executable: "/bin/true", arguments: [], environment: [:],
                                              options: SpawnedProcess.Options()) else { exit(12) }
            guard p.waitForExit().status == .exited(0) else { exit(13) }
            exit(Self.markerWritten(marker[0]) ? 3 : 0)
        }
    }

    /// A signal that interrupts a blocking connect (EINTR) does not fail it:
    /// the connection is completed. A listener whose backlog is full keeps
    /// the connect waiting; a handler without SA_RESTART makes it return EINTR.
    @Test func anInterruptedConnectStillConnects() async {
        await #expect(processExitsWith: .exitCode(0)) {
            var sa = sigaction()
            sa.__sigaction_handler.sa_handler = { _ in interruptions += 1 }
            sa.sa_flags = 0
            sigemptyset(&sa.sa_mask)
            guard sigaction(SIGURG, &sa, nil) == 0 else { exit(10) }
            let path = TestEnv.tempDir("connect-eintr") + "/s"
            guard let listener = try? SocketIO.listenUnix(path), listen(listener, 0) == 0,
                  (try? SocketIO.connectUnix(path)) != nil else { exit(11) }
            // Backlog 0 with one connection queued: the next connect blocks.
            let blocked = Locked<(tid: pid_t, thread: pthread_t)?>(nil)
            let result = Locked<Result<Int32, Errno>?>(nil)
            Thread.detachNewThread {
                // The test process's threads block most signals; this one takes SIGURG.
                var urg = sigset_t()
                sigemptyset(&urg)
                sigaddset(&urg, SIGURG)
                pthread_sigmask(SIG_UNBLOCK, &urg, nil)
                // This thread's id: /proc/thread-self links to <pid>/task/<tid>.
                let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? ""
                blocked.withLock { $0 = (pid_t(link.split(separator: "/").last ?? "") ?? 0, pthread_self()) }
                let r = Result { try SocketIO.connectUnix(path) }.mapError { $0 as! Errno }
                result.withLock { $0 = r }
            }
            var waiting: (tid: pid_t, thread: pthread_t)?
            guard Self.within(60, {
                if let b = blocked.withLock({ $0 }),
                   (try? String(contentsOfFile: "/proc/self/task/\(b.tid)/wchan", encoding: .utf8)) == "unix_wait_for_peer" {
                    waiting = b
                }
                return waiting != nil
            }) else { exit(20) }
            guard pthread_kill(waiting!.thread, SIGURG) == 0 else { exit(12) }
            guard Self.within(60, { interruptions > 0 }) else { exit(21) }
            // The handler ran: connect returned EINTR. Room in the backlog lets it complete.
            guard accept(listener, nil, nil) >= 0 else { exit(13) }
            var outcome: Result<Int32, Errno>?
            guard Self.within(60, { outcome = result.withLock { $0 }; return outcome != nil }) else { exit(22) }
            guard case .success(let fd) = outcome! else {
                FileHandle.standardError.write(Data("connect failed: \(outcome!)\n".utf8))
                exit(3)
            }
            var peer = sockaddr_un()
            var len = socklen_t(MemoryLayout<sockaddr_un>.size)
            let connected = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
            }
            exit(connected == 0 ? 0 : 2)
        }
    }
}
