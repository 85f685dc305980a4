#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// A generator subprocess inside the job child (which is synchronous and
/// single-job, so it waits on its own thread with poll(2)). The process leads
/// its own session; a timeout stops the whole group: SIGTERM, 2 s, SIGKILL.
struct AgentProcess {
    enum Status: Equatable { case exited(Int32), signaled(Int32), timedOut }

    /// How the process ended and the CPU time it used (user + system, its
    /// own plus that of the descendants it waited for), from wait4(2).
    struct Ended: Equatable {
        var status: Status
        var cpuSeconds: Double
    }

    let pid: pid_t
    let outFD: Int32
    let errFD: Int32

    init(executable: String, arguments: [String], environment: [String: String], cwd: String) throws {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&outPipe) }
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&errPipe) }
        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environment: environment)
        let pid = cshims_spawn(executable, argv.pointers, envp.pointers, -1, outPipe[1], errPipe[1], -1, -1, cwd)
        close(outPipe[1]); close(errPipe[1])
        guard pid > 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw JobFailure(.generationFailed, "cannot start \(executable): \(Errno(-pid))")
        }
        self.pid = pid
        outFD = outPipe[0]
        errFD = errPipe[0]
    }

    /// Relays output lines until both pipes close and the process exits, or the timeout.
    func run(timeoutSeconds: Int, onLine: (String, Bool) -> Void) -> Ended {
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds))
        // LineFraming's limit: an unbounded line from the agent cannot grow memory.
        var buffers: [Int32: LineSplitter] = [outFD: LineSplitter(), errFD: LineSplitter()]
        var open: Set<Int32> = [outFD, errFD]
        var timedOut = false
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 || ParentWatch.orphaned { timedOut = true; break }
            var fds = open.sorted().map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1) * 1000))
            if n < 0 && errno != EINTR { break }
            for p in fds where p.revents != 0 {
                let got = read(p.fd, &chunk, chunk.count)
                if got <= 0 {
                    if got < 0 && errno == EINTR { continue }
                    open.remove(p.fd)
                    buffers[p.fd]?.finish { onLine($0, p.fd == errFD) }
                    continue
                }
                buffers[p.fd]?.feed(chunk[0..<got]) { onLine($0, p.fd == errFD) }
            }
        }
        close(outFD); close(errFD)
        if timedOut {
            kill(-pid, SIGTERM)
            let stop = Date().addingTimeInterval(2)
            while Date() < stop {
                if let ended = reap(blocking: false) {
                    kill(-pid, SIGKILL)
                    return Ended(status: .timedOut, cpuSeconds: ended.cpuSeconds)
                }
                usleep(50_000)
            }
            kill(-pid, SIGKILL)
            return Ended(status: .timedOut, cpuSeconds: reap(blocking: true)?.cpuSeconds ?? 0)
        }
        let ended = reap(blocking: true) ?? Ended(status: .exited(-1), cpuSeconds: 0)
        kill(-pid, SIGKILL) // anything the agent left running in its group
        return ended
    }

    /// wait4 on the agent: nil while it still runs (non-blocking) or on error.
    private func reap(blocking: Bool) -> Ended? {
        var status: Int32 = 0
        var usage = rusage()
        var r: pid_t
        repeat { r = wait4(pid, &status, blocking ? 0 : WNOHANG, &usage) } while r < 0 && errno == EINTR
        guard r == pid else { return nil }
        let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
        let s: Status = cshims_wifsignaled(status) != 0 ? .signaled(cshims_wtermsig(status)) : .exited(cshims_wexitstatus(status))
        return Ended(status: s, cpuSeconds: cpu)
    }
}
