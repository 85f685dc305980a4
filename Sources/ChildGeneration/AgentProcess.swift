#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// A generator subprocess inside the job child (which is synchronous and
/// single-job, so it waits on its own thread with poll(2)). It is spawned by
/// the one `SpawnedProcess` implementation: its own session, a pidfd, and
/// SIGKILL if the job child dies. A timeout stops its group: SIGTERM, 2 s,
/// SIGKILL. Everything else it started is ended by `AgentReaper` afterwards.
struct AgentProcess {
    enum Status: Equatable { case exited(Int32), signaled(Int32), timedOut }

    /// How the process ended and the CPU time it used (user + system, its
    /// own plus that of the descendants it waited for), from wait4(2).
    struct Ended: Equatable {
        var status: Status
        var cpuSeconds: Double
    }

    let process: SpawnedProcess
    let outFD: Int32
    let errFD: Int32

    init(executable: String, arguments: [String], environment: [String: String], cwd: String) throws {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&outPipe) }
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&errPipe) }
        var o = SpawnedProcess.Options()
        o.stdout = outPipe[1]; o.stderr = errPipe[1]
        o.workingDirectory = cwd
        o.deathSignal = SIGKILL // spawned from the job child's main thread, which lives until the job ends
        o.layers = AgentConfinement.layers
        do {
            // Never once a stop's checkpoint holds the tree (`StopGate`).
            process = try StopGate.whileGenerating {
                try SpawnedProcess(executable: executable, arguments: arguments, environment: environment, options: o)
            }
        } catch {
            close(outPipe[0]); close(errPipe[0]); close(outPipe[1]); close(errPipe[1])
            throw JobFailure(.generationFailed, "cannot start \(executable): \(error)")
        }
        close(outPipe[1]); close(errPipe[1])
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
        var leaderExited: Date?
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 || ParentWatch.orphaned { timedOut = true; break }
            // A process the agent left behind may hold its pipes open: once the
            // agent itself has exited, its output gets one more second.
            if process.hasExited {
                if leaderExited == nil { leaderExited = Date() } else if Date().timeIntervalSince(leaderExited!) > 1 { break }
            }
            AgentReaper.reapOrphans(except: process.pid)
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
            process.signalGroup(SIGTERM)
            let stop = Date().addingTimeInterval(2)
            while Date() < stop {
                if let ended = process.exitedStatus() {
                    return Ended(status: .timedOut, cpuSeconds: ended.cpuSeconds)
                }
                usleep(50_000)
            }
            process.signalGroup(SIGKILL)
            return Ended(status: .timedOut, cpuSeconds: process.waitForExit().cpuSeconds)
        }
        let ended = process.waitForExit()
        switch ended.status {
        case .exited(let c): return Ended(status: .exited(c), cpuSeconds: ended.cpuSeconds)
        case .signaled(let s): return Ended(status: .signaled(s), cpuSeconds: ended.cpuSeconds)
        }
    }
}

/// The agent's own confinement layers (set by the job child once it has
/// confined itself; nil with SANDBOX=off): every agent spawn applies them
/// between clone and execve.
public enum AgentConfinement {
    private static let current = Locked<ExecLayers?>(nil)
    public static var layers: ExecLayers? {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// Ends every process an agent started, however it detached (double fork,
/// setsid). In a PID namespace the job child is init: kill(-1) reaches every
/// other process of the namespace and orphans are re-parented to it. Without
/// one (SANDBOX=off on a host without namespaces) it is a subreaper and
/// kills its descendants through /proc.
public enum AgentReaper {
    /// Whether this process is init of its own PID namespace.
    public static var isNamespaceInit: Bool { getpid() == 1 }

    /// Reaps exited orphans (never `except`, whose status its owner collects).
    static func reapOrphans(except pid: pid_t) {
        while true {
            var info = siginfo_t()
            guard waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 else { return }
            let found = info._sifields._sigchld.si_pid
            guard found > 0, found != pid else { return }
            var status: Int32 = 0
            _ = try? retryingEINTR("waitpid") { waitpid(found, &status, 0) }
        }
    }

    /// SIGKILLs every process this job started except the caller, reaps them,
    /// and returns how many were still running.
    @discardableResult
    public static func killAll() -> Int {
        var killed = 0
        if isNamespaceInit {
            if kill(-1, SIGKILL) == 0 { killed = -1 }
        } else {
            for _ in 0..<64 {
                let children = childPids()
                if children.isEmpty { break }
                for child in children { kill(child, SIGKILL); killed += 1 }
                reapAll()
            }
        }
        reapAll()
        return killed
    }

    /// How many processes this one still has as children (after `killAll`: 0).
    public static func remaining() -> Int { childPids().count }

    /// Reaps every exited child, blocking until none is left.
    static func reapAll() {
        var status: Int32 = 0
        // Until ECHILD (none left); a signal does not end it.
        while (try? retryingEINTR("waitpid") { waitpid(-1, &status, 0) }) != nil {}
    }

    /// The pids whose parent is this process, from /proc/*/stat.
    static func childPids() -> [pid_t] {
        let me = getpid()
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), pid != me,
                  let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == me ? pid : nil
        }
    }
}
