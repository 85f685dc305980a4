#if canImport(Glibc)
import Glibc
#endif

/// A failed system call's errno, with the call's name for context.
public struct Errno: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: Int32
    public let call: String
    public init(_ code: Int32, _ call: String = "") {
        self.code = code
        self.call = call
    }
    public var description: String {
        let msg = String(cString: strerror(code))
        return call.isEmpty ? msg : "\(call): \(msg)"
    }
}

/// Runs a libc call that returns -1 and sets errno on failure, retrying EINTR.
/// Never use it for `close` (a retried close may close another thread's fd).
@discardableResult
public func retryingEINTR<T: BinaryInteger>(_ call: String, _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = errno
        if e == EINTR { continue }
        throw Errno(e, call)
    }
}

/// connect(2) on a blocking socket, through a signal. POSIX: an interrupted
/// connect (EINTR) goes on asynchronously, and calling it again answers
/// EALREADY while it does. So this waits until the socket is writable (at
/// most `timeoutMs` per wait; -1: no limit), takes the attempt's outcome from
/// SO_ERROR, and calls connect again, which answers EISCONN once connected
/// (and makes the attempt anew where the kernel dropped it: a Unix socket).
/// EINPROGRESS from a blocking socket means its SO_SNDTIMEO ran out: ETIMEDOUT.
/// Throws `Errno` named `call`.
public func connectRetryingEINTR(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t,
                                 _ call: String, timeoutMs: Int32 = -1) throws {
    var interrupted = false
    while true {
        if connect(fd, address, length) == 0 { return }
        let e = errno
        if e == EISCONN && interrupted { return }
        if e == EINPROGRESS { throw Errno(ETIMEDOUT, call) }
        guard e == EINTR || (e == EALREADY && interrupted) else { throw Errno(e, call) }
        interrupted = true
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if try retryingEINTR("poll", { poll(&p, 1, timeoutMs) }) == 0 { throw Errno(ETIMEDOUT, call) }
        var pending: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        try retryingEINTR("getsockopt SO_ERROR") { getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &size) }
        if pending != 0 { throw Errno(pending, call) }
    }
}

/// Runs a call that returns a negative errno on failure (as the C shims do).
@discardableResult
public func checkingNegativeErrno(_ call: String, _ body: () -> Int32) throws -> Int32 {
    while true {
        let r = body()
        if r >= 0 { return r }
        if -r == EINTR { continue }
        throw Errno(-r, call)
    }
}

/// Writes all of `bytes` to `fd`.
public func writeAll(_ fd: Int32, _ bytes: some Collection<UInt8>) throws {
    let array = Array(bytes)
    var offset = 0
    while offset < array.count {
        let n = try array.withUnsafeBytes { p -> Int in
            try retryingEINTR("write") { write(fd, p.baseAddress! + offset, array.count - offset) }
        }
        offset += n
    }
}
