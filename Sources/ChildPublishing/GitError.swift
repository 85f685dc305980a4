import CGit2
import RunnerCore

/// A libgit2 failure: the return code, libgit2's class and message, and what we were doing.
public struct GitError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let klass: Int32
    public let message: String
    public let operation: String

    /// Captures `git_error_last()` for a failed call.
    init(_ code: Int32, _ operation: String) {
        self.code = code
        self.operation = operation
        if let e = git_error_last() {
            klass = e.pointee.klass
            message = e.pointee.message.map { String(cString: $0) } ?? "unknown error"
        } else {
            klass = 0
            message = "error \(code)"
        }
    }

    public var description: String { "\(operation): \(message)" }
}

/// Converts a libgit2 return code into a thrown `GitError`.
@discardableResult
func git(_ operation: String, _ rc: Int32) throws -> Int32 {
    if rc < 0 { throw GitError(rc, operation) }
    return rc
}
