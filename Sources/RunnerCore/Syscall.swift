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
