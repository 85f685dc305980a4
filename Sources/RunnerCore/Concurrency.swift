import Foundation

/// A mutex-guarded value shared between threads and tasks.
public final class Locked<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    public init(_ value: Value) { self.value = value }
    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// Runs blocking work (fork/exec, file-system trees, libcurl) on a thread
/// dedicated to blocking work (`BlockingPool.shared`, bounded), so it never
/// occupies Swift's cooperative pool, and awaits it. The work must end on its
/// own: a wait for other work of the pool can deadlock it.
public func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingPool.shared.run(body)
}

/// NUL-terminated C string arrays (argv, envp) for execve, freed on deinit.
public final class CStringArray {
    private let storage: [UnsafeMutablePointer<CChar>?]
    /// The strings followed by a NULL, as execve wants them.
    public var pointers: [UnsafeMutablePointer<CChar>?] { storage }

    public init(_ strings: [String]) { storage = strings.map { strdup($0) } + [nil] }

    /// `KEY=VALUE` entries, sorted by key.
    public convenience init(environment: [String: String]) {
        self.init(environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
    }

    deinit { storage.forEach { free($0) } }
}
