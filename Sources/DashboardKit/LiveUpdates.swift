import Foundation
import JobStore
import Logging
import RunnerCore
import ServiceLifecycle

/// Fans the jobs collection's change stream out to the open live views.
/// Each subscriber gets an `AsyncStream` of wake-ups: one per change of its
/// job (or of any job), plus a tick every `pollInterval` while the change
/// stream is down (polling fallback) and every `keepAlive` while it is up
/// (a safety re-read, and a write that finds closed connections).
public final class ChangeHub: Sendable {
    struct Subscriber: Sendable {
        let jobId: String?
        let continuation: AsyncStream<Void>.Continuation
    }

    struct State: Sendable {
        var next = 0
        var subscribers: [Int: Subscriber] = [:]
        var streamUp = false
        var closed = false
    }

    private let state = Locked(State())
    private let watcher: ChangeWatcher?
    /// The most live views open at once; more are refused (503).
    public let capacity: Int
    let pollInterval: Duration
    let keepAlive: Duration

    /// A hub fed by `pool`'s change stream (nil: polling only).
    public init(pool: MongoPool?, pollInterval: Duration = .seconds(2), keepAlive: Duration = .seconds(15),
                capacity: Int = 200, logger: Logger) {
        self.pollInterval = pollInterval
        self.keepAlive = keepAlive
        self.capacity = capacity
        watcher = pool.map { ChangeWatcher(pool: $0, pipeline: ChangeWatcher.anyChange) }
        watcher?.startKeyed(onChange: { [weak self] id in self?.publish(jobId: id) }, onState: { [weak self] up, why in
            if up { logger.info("change stream open: live views follow it") } else {
                logger.warning("change stream unavailable: live views poll", metadata: ["reason": "\(why)"])
            }
            self?.setStreamUp(up)
        })
    }

    deinit { watcher?.stop() }

    /// Whether the change stream is open now.
    public var streamUp: Bool { state.withLock { $0.streamUp } }

    /// Wakes the subscribers of `jobId` and those of every job (nil: everyone).
    public func publish(jobId: String?) {
        let targets = state.withLock { s in
            s.subscribers.values.filter { jobId == nil || $0.jobId == nil || $0.jobId == jobId }
        }
        for t in targets { t.continuation.yield() }
    }

    func setStreamUp(_ up: Bool) {
        state.withLock { $0.streamUp = up }
        publish(jobId: nil)
    }

    /// Wake-ups for one job (or all with nil), starting with one at once;
    /// nil when `capacity` views are open.
    public func subscribe(jobId: String?) -> AsyncStream<Void>? {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key: Int? = state.withLock { s in
            guard !s.closed, s.subscribers.count < capacity else { return nil }
            s.next += 1
            s.subscribers[s.next] = Subscriber(jobId: jobId, continuation: continuation)
            return s.next
        }
        guard let key else { return nil }
        let ticker = Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                try? await Task.sleep(for: self.streamUp ? self.keepAlive : self.pollInterval)
                continuation.yield()
            }
        }
        continuation.onTermination = { [weak self] _ in
            ticker.cancel()
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: key) }
        }
        continuation.yield()
        return stream
    }

    /// Ends every live view and refuses new ones (the server is shutting down).
    public func close() {
        let all = state.withLock { s in
            s.closed = true
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for sub in all { sub.continuation.finish() }
    }

    #if DEBUG
    /// How many live views are open (a test hook: debug builds only).
    public var subscriberCount: Int { state.withLock { $0.subscribers.count } }
    #endif
}

/// Closes the hub's live views at graceful shutdown: their event streams
/// never end by themselves, and the server waits for open responses.
struct LiveViewCloser: Service {
    let hub: ChangeHub
    func run() async throws {
        try? await gracefulShutdown()
        hub.close()
    }
}

/// Works out which log lines are new between two reads of a capped log
/// (`$push` with `$slice`: lines are appended at the end and the oldest
/// dropped from the front once the cap is reached).
public enum LogDiff {
    /// The lines of `current` that follow what `previous` ended with: after
    /// the longest suffix of `previous` that `current` starts with. When the
    /// two share nothing (the log was replaced), all of `current`.
    public static func newLines(previous: [String], current: [String]) -> ArraySlice<String> {
        var comparisons = 0
        return newLines(previous: previous, current: current, comparisons: &comparisons)
    }

    /// `newLines`, counting the line comparisons it makes in `comparisons`:
    /// at most 2 × (`previous.count` + `current.count`) (Knuth-Morris-Pratt,
    /// with `current` as the pattern run over `previous`), however
    /// repetitive the log.
    static func newLines(previous: [String], current: [String], comparisons: inout Int) -> ArraySlice<String> {
        if previous.isEmpty || current.isEmpty { return current[...] }
        // failure[i]: the length of the longest proper border of current[0...i].
        var failure = [Int](repeating: 0, count: current.count)
        var k = 0
        for i in 1..<current.count {
            while true {
                comparisons += 1
                if current[i] == current[k] { k += 1; break }
                if k == 0 { break }
                k = failure[k - 1]
            }
            failure[i] = k
        }
        // The longest prefix of `current` that ends where `previous` ends.
        var matched = 0
        for line in previous {
            while true {
                if matched == current.count { matched = failure[matched - 1] }
                comparisons += 1
                if line == current[matched] { matched += 1; break }
                if matched == 0 { break }
                matched = failure[matched - 1]
            }
        }
        return current.dropFirst(matched)
    }
}

/// Server-Sent Events framing.
public enum SSE {
    /// One event: `event: NAME` and the data (JSON on one line).
    public static func event(_ name: String, _ data: JSONValue) -> String {
        "event: \(name)\ndata: \(data.jsonString)\n\n"
    }

    /// A comment line, ignored by clients (keeps proxies and the connection check alive).
    public static let keepAlive = ": keep-alive\n\n"
}
