#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// Something `ChildIO` watches: called on its thread when the descriptor is
/// ready (readable, writable, or in error). It must not block.
protocol ChildIOWatch: AnyObject, Sendable {
    func ready()
}

/// The one thread that serves every child of this process: the pipes to and
/// from each (non-blocking reads and writes) and each one's exit (its pidfd
/// becomes readable; it is then reaped). One epoll set; the thread starts
/// with the first child. It reaps only the processes registered with it (by
/// pidfd), never another part's children.
final class ChildIO: @unchecked Sendable {
    static let shared = ChildIO()

    private let epfd: Int32
    private let lock = NSLock()
    private var watched: [UInt64: any ChildIOWatch] = [:]
    private var nextID: UInt64 = 0
    private var started = false

    private init() {
        let fd = cshims_epoll_create()
        precondition(fd >= 0, "epoll_create1: \(Errno(-fd))")
        epfd = fd
    }

    /// A new id for `watch`, taken before it so that a handler called at
    /// once (a child that exits at once) already knows it.
    func newID() -> UInt64 {
        lock.withLock {
            nextID += 1
            return nextID
        }
    }

    /// Watches `fd` for reading (else writing) under `id` (from `newID`).
    func watch(_ fd: Int32, id: UInt64, readable: Bool, _ handler: any ChildIOWatch) throws {
        lock.lock()
        defer { lock.unlock() }
        try checkingNegativeErrno("epoll_ctl ADD") { cshims_epoll_add(epfd, fd, readable ? 1 : 0, id) }
        watched[id] = handler
        if !started {
            started = true
            let thread = Thread { [self] in loop() }
            thread.name = "child-io"
            thread.start()
        }
    }

    /// Stops watching `fd` (before it is closed). The handler may still be
    /// called once, for events already taken from the set.
    func unwatch(_ fd: Int32, id: UInt64) {
        lock.lock()
        defer { lock.unlock() }
        _ = cshims_epoll_del(epfd, fd)
        watched[id] = nil
    }

    private func loop() {
        var ids = [UInt64](repeating: 0, count: 64)
        while true {
            let n = cshims_epoll_wait(epfd, &ids, Int32(ids.count))
            if n < 0 {
                if n == -EINTR { continue }
                fatalError("epoll_wait: \(Errno(-n))")
            }
            for i in 0..<Int(n) {
                let handler = lock.withLock { watched[ids[i]] }
                handler?.ready()
            }
        }
    }
}

/// Reads one pipe from a child (non-blocking) into lines under
/// `LineFraming`; at EOF it flushes the last line, closes the pipe and calls `done`.
final class PipeLineReader: ChildIOWatch, @unchecked Sendable {
    private let fd: Int32
    private let id = ChildIO.shared.newID()
    private var lines = LineSplitter()
    private var finished = false
    private let emit: @Sendable (String) -> Void
    private let done: @Sendable () -> Void
    /// Only ever used on ChildIO's thread.
    nonisolated(unsafe) private static var buffer = [UInt8](repeating: 0, count: 65536)

    /// Starts reading `fd` (the reader owns it from now on).
    init(fd: Int32, emit: @escaping @Sendable (String) -> Void, done: @escaping @Sendable () -> Void) throws {
        self.fd = fd
        self.emit = emit
        self.done = done
        try setNonBlocking(fd)
        try ChildIO.shared.watch(fd, id: id, readable: true, self)
    }

    func ready() {
        guard !finished else { return }
        // One read per wake-up: the set is level-triggered, so a busy pipe
        // is read again next round and cannot starve the others.
        let n = Self.buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n > 0 {
            lines.feed(Self.buffer[0..<n], emit)
            return
        }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return }
        finished = true
        lines.finish(emit)
        ChildIO.shared.unwatch(fd, id: id)
        close(fd)
        done()
    }
}

/// A child's stdin: bytes queued by any thread, written by ChildIO's thread
/// as the pipe takes them. Only that queue closes the descriptor (after what
/// was queued before `close()` is written), so no write can reach a number
/// that another `open` reused.
final class PipeWriter: ChildIOWatch, @unchecked Sendable {
    private let lock = NSLock()
    private var fd: Int32
    private var id: UInt64 = 0
    private var pending: [UInt8] = []
    private var offset = 0
    private var written = 0
    private var queued = 0
    private var waiters: [(end: Int, continuation: CheckedContinuation<Void, Error>)] = []
    private var closeRequested = false

    /// Owns `fd` from now on.
    init(fd: Int32) throws {
        self.fd = fd
        try setNonBlocking(fd)
    }

    /// Queues `bytes`; `continuation` (if any) resumes once they are written,
    /// or throws EPIPE when the pipe closes first. Throws EPIPE when closed.
    func enqueue(_ bytes: [UInt8], _ continuation: CheckedContinuation<Void, Error>? = nil) {
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0, !closeRequested else {
            continuation?.resume(throwing: Errno(EPIPE, "write to the child"))
            return
        }
        guard !bytes.isEmpty else { continuation?.resume(); return }
        pending += bytes
        queued += bytes.count
        if let continuation { waiters.append((queued, continuation)) }
        if id == 0 {
            do {
                id = ChildIO.shared.newID()
                try ChildIO.shared.watch(fd, id: id, readable: false, self)
            } catch {
                id = 0
                closeLocked(error)
            }
        }
    }

    /// Closes the pipe once what is queued is written (at once when nothing is).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        closeRequested = true
        if offset == pending.count { closeLocked(nil) }
    }

    func ready() {
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { return }
        while offset < pending.count {
            let n = pending.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return }
                closeLocked(Errno(errno, "write to the child"))
                return
            }
            offset += n
            written += n
        }
        while let first = waiters.first, first.end <= written {
            waiters.removeFirst().continuation.resume()
        }
        pending.removeAll(keepingCapacity: false)
        offset = 0
        // Drained: stop watching (an idle pipe whose reader went away would
        // report an error on every round).
        ChildIO.shared.unwatch(fd, id: id)
        id = 0
        if closeRequested { closeLocked(nil) }
    }

    private func closeLocked(_ error: Error?) {
        guard fd >= 0 else { return }
        if id != 0 { ChildIO.shared.unwatch(fd, id: id) }
        Glibc.close(fd)
        fd = -1
        id = 0
        pending = []
        offset = 0
        for w in waiters { w.continuation.resume(throwing: error ?? Errno(EPIPE, "write to the child")) }
        waiters = []
    }
}

/// Waits for a child's exit on ChildIO's thread (its pidfd), then reaps it
/// (`SpawnedProcess.reapExited`) and delivers the status.
final class ExitWatch: ChildIOWatch, @unchecked Sendable {
    private let process: SpawnedProcess
    private let deliver: @Sendable (ExitStatus) -> Void
    /// Set by the one call that reaps.
    private let claimed = Locked(false)
    private let id = ChildIO.shared.newID()

    init(_ process: SpawnedProcess, deliver: @escaping @Sendable (ExitStatus) -> Void) {
        self.process = process
        self.deliver = deliver
        let fd = process.exitDescriptor
        if fd < 0 || (try? ChildIO.shared.watch(fd, id: id, readable: true, self)) == nil {
            // No pidfd to watch: a blocking wait for the process's whole life,
            // on a thread of its own (on the shared pool, a few running jobs
            // would hold every thread and starve spawns and hand-overs).
            Thread.detachNewThread { [self] in
                guard claim() else { return }
                deliver(process.waitForExit().status)
            }
        }
    }

    func ready() {
        // Reaped once: after the reap the process group may be another's.
        guard claim() else { return }
        ChildIO.shared.unwatch(process.exitDescriptor, id: id)
        deliver(process.reapExited().status)
    }

    private func claim() -> Bool { claimed.withLock { c in defer { c = true }; return !c } }
}

/// O_NONBLOCK on this process's end of a pipe (the child's end is another
/// open file description and stays blocking).
func setNonBlocking(_ fd: Int32) throws {
    let flags = try retryingEINTR("fcntl F_GETFL") { fcntl(fd, F_GETFL) }
    try retryingEINTR("fcntl F_SETFL") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
}
