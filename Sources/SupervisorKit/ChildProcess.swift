#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// How a child process ended. A non-zero exit is a value, not an error.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let c): return "exit code \(c)"
        case .signaled(let s): return "signal \(s) (\(Self.signalName(s)))"
        }
    }

    /// SIGKILL → "SIGKILL", etc.
    public static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
                                      SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE",
                                      SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGTERM: "SIGTERM",
                                      SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS"]
        return names[s] ?? "SIG\(s)"
    }
}

/// One line of a child's output.
public enum ChildOutput: Sendable {
    case stdout(String)
    case stderr(String)
}

/// A spawned child: leader of its own session and process group. Its pipes
/// are read and its exit is awaited on dedicated threads, never on Swift's
/// cooperative pool.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// Every line the child writes, stdout and stderr; finishes when both close.
    public let output: AsyncStream<ChildOutput>
    private let exit: AsyncStream<ExitStatus>

    /// Spawns `executable` with exactly `environment`, writes `stdin` then
    /// closes it. `uid`/`gid` switch identity before exec when set.
    public init(executable: String, arguments: [String], environment: [String: String], stdin: [UInt8],
                workingDirectory: String? = nil, uid: Int32? = nil, gid: Int32? = nil) throws {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&inPipe) }
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&outPipe) }
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&errPipe) }
        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environment: environment)
        let pid = cshims_spawn(executable, argv.pointers, envp.pointers, inPipe[0], outPipe[1], errPipe[1],
                               uid ?? -1, gid ?? -1, workingDirectory)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard pid > 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw Errno(-pid, "spawn \(executable)")
        }
        self.pid = pid
        let (output, outCont) = AsyncStream.makeStream(of: ChildOutput.self)
        let (exit, exitCont) = AsyncStream.makeStream(of: ExitStatus.self, bufferingPolicy: .bufferingNewest(1))
        self.output = output
        self.exit = exit
        let writeFD = inPipe[1]
        Thread.detachNewThread {
            try? writeAll(writeFD, stdin)
            close(writeFD)
        }
        let open = OpenStreams(count: 2, continuation: outCont)
        for (fd, isErr) in [(outPipe[0], false), (errPipe[0], true)] {
            Thread.detachNewThread {
                Self.readLines(fd) { outCont.yield(isErr ? .stderr($0) : .stdout($0)) }
                close(fd)
                open.closeOne()
            }
        }
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exitCont.yield(cshims_wifsignaled(status) != 0 ? .signaled(cshims_wtermsig(status))
                : .exited(cshims_wexitstatus(status)))
            exitCont.finish()
        }
    }

    /// Waits (without blocking the cooperative pool) for the leader to exit.
    public func waitForExit() async -> ExitStatus {
        for await s in exit { return s }
        return .exited(-1)
    }

    /// Sends `signal` to the child's whole process group.
    public func signalGroup(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// Splits a byte stream into lines under `LineFraming` (an over-long
    /// line is delivered cut, with a marker; memory stays bounded).
    static func readLines(_ fd: Int32, _ emit: (String) -> Void) {
        var lines = LineSplitter()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            lines.feed(buf[0..<n], emit)
        }
        lines.finish(emit)
    }
}

/// Finishes the output stream when the last reader closes.
private final class OpenStreams: @unchecked Sendable {
    private var remaining: Int
    private let lock = NSLock()
    private let continuation: AsyncStream<ChildOutput>.Continuation
    init(count: Int, continuation: AsyncStream<ChildOutput>.Continuation) {
        remaining = count
        self.continuation = continuation
    }
    func closeOne() {
        lock.lock()
        remaining -= 1
        let done = remaining == 0
        lock.unlock()
        if done { continuation.finish() }
    }
}

/// The unprivileged identity a job child runs as under JOB_UID_RANGE: uid =
/// gid, picked by hashing the job id (FNV-1a, stable across restarts) and
/// probing past uids held by this supervisor's other running children. The
/// supervisor creates the workspace and gives it to that uid before spawning.
public struct ChildIdentity: Sendable {
    /// The uid (and gid) of the child.
    public let uid: Int32

    /// Claims a uid for `jobId` and creates `workspace` (mode 0700) owned by
    /// it. Throws `internal` when the supervisor is not root or cannot chown.
    /// Call `release()` once the child has exited.
    public static func claim(range: ClosedRange<Int>, jobId: String, workspace: String) throws -> ChildIdentity {
        guard geteuid() == 0 else {
            throw JobFailure(.internal, "JOB_UID_RANGE is set but the supervisor is not root (euid \(geteuid())): "
                + "it cannot run job children as other uids; unset JOB_UID_RANGE or run it as root")
        }
        let uid = inUse.claim(range: range, start: Int(fnv1a(jobId) % UInt64(range.count)))
        let identity = ChildIdentity(uid: Int32(uid))
        do {
            if mkdir(workspace, 0o700) != 0 { throw Errno(errno, "mkdir \(workspace)") }
            if chown(workspace, uid_t(uid), gid_t(uid)) != 0 { throw Errno(errno, "chown \(workspace) to \(uid)") }
        } catch {
            identity.release()
            throw JobFailure(.internal, "JOB_UID_RANGE: cannot give the workspace to uid \(uid): \(error)")
        }
        return identity
    }

    /// Returns the uid to the pool.
    public func release() { Self.inUse.release(Int(uid)) }

    static let inUse = UIDPool()

    static func fnv1a(_ s: String) -> UInt64 {
        s.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x0100_0000_01b3 }
    }
}

/// The uids held by running children of this process.
final class UIDPool: @unchecked Sendable {
    private var held: [Int: Int] = [:]
    private let lock = NSLock()

    /// The first uid from `range.lowerBound + start` (wrapping) that no
    /// running child holds; when every one is held, the first one (shared).
    func claim(range: ClosedRange<Int>, start: Int) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let count = range.count
        var chosen = range.lowerBound + start
        for i in 0..<min(count, 4096) {
            let uid = range.lowerBound + (start + i) % count
            if held[uid, default: 0] == 0 { chosen = uid; break }
        }
        held[chosen, default: 0] += 1
        return chosen
    }

    func release(_ uid: Int) {
        lock.lock()
        defer { lock.unlock() }
        if let n = held[uid] { held[uid] = n > 1 ? n - 1 : nil }
    }
}
