#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// One line of a child's output.
public enum ChildOutput: Sendable {
    case stdout(String)
    case stderr(String)
}

/// A spawned child: leader of its own session and process group (and, with
/// `namespaces`, init of its own PID namespace). Its pipes are served and its
/// exit is awaited by `ChildIO`'s one thread for all children, never on
/// Swift's cooperative pool and never by a thread per child.
/// Its stdin stays open until `closeInput()`, so the supervisor can hand it
/// more (the push token) later, and so the child sees EOF if we die.
public final class ChildProcess: Sendable {
    public var pid: pid_t { process.pid }
    private let process: SpawnedProcess
    /// Every line the child writes, stdout and stderr; finishes when both close.
    public let output: AsyncStream<ChildOutput>
    private let exit: AsyncStream<ExitStatus>
    private let input: PipeWriter
    private let exitWatch: ExitWatch

    /// Spawns `executable` with exactly `environment` and writes `stdin`.
    /// `uid`/`gid` switch identity before exec when set (without namespaces);
    /// with `namespaces` they are the outer ids mapped to 0 inside.
    public init(executable: String, arguments: [String], environment: [String: String], stdin: [UInt8],
                workingDirectory: String? = nil, uid: Int32? = nil, gid: Int32? = nil,
                namespaces: Namespaces? = nil, cgroupProcs: String? = nil, keepInputOpen: Bool = false) throws {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&inPipe) }
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&outPipe) }
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&errPipe) }
        var o = SpawnedProcess.Options()
        o.stdin = inPipe[0]; o.stdout = outPipe[1]; o.stderr = errPipe[1]
        o.uid = uid; o.gid = gid
        o.workingDirectory = workingDirectory
        o.namespaces = namespaces
        o.cgroupProcs = cgroupProcs
        let spawned: SpawnedProcess
        do {
            spawned = try SpawnedProcess(executable: executable, arguments: arguments, environment: environment, options: o)
        } catch {
            for fd in inPipe + outPipe + errPipe { close(fd) }
            throw error
        }
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        process = spawned
        let (output, outCont) = AsyncStream.makeStream(of: ChildOutput.self)
        let (exit, exitCont) = AsyncStream.makeStream(of: ExitStatus.self, bufferingPolicy: .bufferingNewest(1))
        self.output = output
        self.exit = exit
        // From here the exit watch reaps the child whatever else fails.
        exitWatch = ExitWatch(spawned) { status in
            exitCont.yield(status)
            exitCont.finish()
        }
        do {
            input = try PipeWriter(fd: inPipe[1])
        } catch {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            spawned.signalGroup(SIGKILL)
            throw error
        }
        input.enqueue(stdin)
        if !keepInputOpen { input.close() }
        let open = OpenStreams(count: 2, continuation: outCont)
        let outFD = outPipe[0], errFD = errPipe[0]
        do {
            _ = try PipeLineReader(fd: outFD, emit: { outCont.yield(.stdout($0)) }, done: { open.closeOne() })
        } catch {
            close(outFD); close(errFD)
            input.close()
            spawned.signalGroup(SIGKILL)
            throw error
        }
        do {
            _ = try PipeLineReader(fd: errFD, emit: { outCont.yield(.stderr($0)) }, done: { open.closeOne() })
        } catch {
            close(errFD)
            input.close()
            spawned.signalGroup(SIGKILL)
            throw error
        }
    }

    /// Waits (without blocking the cooperative pool) for the leader to exit.
    /// Cancellation does not cut it short: an outcome must rest on the real
    /// exit, so the wait runs in a task of its own that nobody cancels.
    public func waitForExit() async -> ExitStatus {
        let exit = exit
        return await Task.detached {
            for await s in exit { return s }
            return ExitStatus.exited(-1)
        }.value
    }

    /// Sends `signal` to the child and, while it is unreaped, its process group.
    public func signalGroup(_ signal: Int32) { process.signalGroup(signal) }

    /// Writes more input for the child; returns once the pipe took it all
    /// (throws EPIPE when the input is closed or the child stopped reading it).
    public func send(_ bytes: [UInt8]) async throws {
        let input = input
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            input.enqueue(bytes, c)
        }
    }

    /// Closes the child's stdin once what was queued is written (it then sees EOF).
    public func closeInput() { input.close() }

    deinit { closeInput() }
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
