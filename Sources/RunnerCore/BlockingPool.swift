#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A bounded set of threads for blocking work (fork/exec, file-system trees,
/// cgroupfs, libmongoc), so that none of it runs on Swift's cooperative pool
/// and a burst of work queues instead of starting a thread per call. Threads
/// start on demand, up to `maxThreads`; with an `idleTimeout` an idle one
/// ends after that long, else it stays. Work that waits on other work of the
/// same pool can deadlock it: submit only work that ends on its own.
public final class BlockingPool: @unchecked Sendable {
    /// The pool for the process's blocking work other than the database's
    /// (`onDedicatedThread`): at most 8 threads, an idle one ends after 5 s.
    public static let shared = BlockingPool(name: "blocking", maxThreads: 8, idleTimeout: 5)

    private let name: String
    private let maxThreads: Int
    private let idleTimeout: Double?
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var head = 0
    private var threads = 0
    private var idle = 0

    /// `name` names the threads (as /proc/<pid>/task/*/comm shows them).
    public init(name: String, maxThreads: Int, idleTimeout: Double? = nil) {
        precondition(maxThreads > 0)
        self.name = String(decoding: name.utf8.prefix(15), as: UTF8.self)
        self.maxThreads = maxThreads
        self.idleTimeout = idleTimeout
    }

    /// The threads the pool holds now (busy or idle).
    public var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return threads
    }

    /// Queues `work`; a thread of the pool runs it.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(work)
        // Idle threads take the queued work; one more starts only when the
        // queue holds more than they can take at once.
        if queue.count - head > idle && threads < maxThreads {
            threads += 1
            condition.unlock()
            startThread()
            return
        }
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on a thread of the pool and awaits its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            submit { c.resume(with: Result { try body() }) }
        }
    }

    private func startThread() {
        let thread = Thread { [self] in work() }
        thread.name = name
        thread.start()
    }

    private func work() {
        condition.lock()
        while true {
            while head == queue.count {
                idle += 1
                let woken: Bool
                if let idleTimeout {
                    woken = condition.wait(until: Date(timeIntervalSinceNow: idleTimeout))
                } else {
                    condition.wait()
                    woken = true
                }
                idle -= 1
                if !woken, head == queue.count {
                    threads -= 1
                    condition.unlock()
                    return
                }
            }
            let item = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            condition.unlock()
            item()
            condition.lock()
        }
    }
}
