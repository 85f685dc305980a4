import Foundation
import JobStore
import RunnerCore

/// The first reason to stop a child, and whether it has exited.
final class ChildControl: Sendable {
    private let state = Locked<(reason: StopReason?, exited: Bool)>((nil, false))
    func stop(_ r: StopReason) { state.withLock { if $0.reason == nil { $0.reason = r } } }
    var reason: StopReason? { state.withLock { $0.reason } }
    func markExited() { state.withLock { $0.exited = true } }
    var exited: Bool { state.withLock { $0.exited } }
}

/// The child's single result event (the first one wins).
final class ResultBox: Sendable {
    private let state = Locked<ChildEvent?>(nil)
    func set(_ e: ChildEvent) { state.withLock { if $0 == nil { $0 = e } } }
    var value: ChildEvent? { state.withLock { $0 } }
}

/// Supervisor-wide shutdown state: stop claiming, then force running jobs to stop.
public final class ShutdownSignal: Sendable {
    private let state = Locked<(draining: Bool, forced: Bool)>((false, false))
    public init() {}
    public func drain() { state.withLock { $0.draining = true } }
    public func force() { state.withLock { $0.forced = true; $0.draining = true } }
    public var isDraining: Bool { state.withLock { $0.draining } }
    public var isForced: Bool { state.withLock { $0.forced } }
}

/// Batches a job's log lines: a job that prints thousands of lines costs a
/// few database round-trips (flush at 200 lines or every half second), and
/// the lines pending when a stage begins or the job ends go with that write
/// (a short job needs no log write of its own). One write at a time, so the
/// lines stay in order.
actor LogBatcher {
    let store: JobStore
    let job: ClaimedJob
    private var pending: [String] = []
    private var lastFlush = ContinuousClock.now
    private var writing = false
    /// Time this job's relay spent in database writes (logs and stages).
    private(set) var databaseTime = Duration.zero

    init(store: JobStore, job: ClaimedJob) {
        self.store = store
        self.job = job
    }

    func add(_ line: String) async {
        pending.append(Self.capped(line))
        if pending.count >= 200 { await flush() }
    }

    /// The longest log line stored, in characters; a longer one is cut with a marker.
    static let maxStoredLine = 4000

    static func capped(_ line: String) -> String {
        guard line.count > maxStoredLine else { return line }
        let kept = String(line.prefix(maxStoredLine))
        return kept + LineFraming.cutMarker(line.utf8.count - kept.utf8.count)
    }

    func flushIfDue() async {
        if !pending.isEmpty, ContinuousClock.now - lastFlush >= .milliseconds(500) { await flush() }
    }

    /// Writes the pending lines (if no write is under way: those lines then
    /// go with the next one).
    func flush() async {
        guard !writing, !pending.isEmpty else { return }
        _ = try? await write { store, job, lines in try await store.appendLogs(job, lines) }
    }

    /// Records `stage` with the pending lines in one write, after any write
    /// under way. False when the lease is lost; throws when the database fails
    /// (the lines stay pending).
    func stage(_ stage: JobStage) async throws -> Bool {
        while writing { try? await Task.sleep(for: .milliseconds(5)) }
        return try await write { store, job, lines in try await store.setStage(job, stage, logs: lines) }
    }

    /// The lines not yet written, for the outcome's write (the relay is over).
    func takeAll() -> [String] {
        defer { pending.removeAll() }
        return pending
    }

    /// Runs one write of the pending lines; on a database error they stay
    /// pending (bounded: the oldest are dropped past 5000, with a marker).
    private func write(_ op: @Sendable (JobStore, ClaimedJob, [String]) async throws -> Bool) async throws -> Bool {
        writing = true
        lastFlush = ContinuousClock.now
        let lines = pending
        pending.removeAll()
        let t = ContinuousClock.now
        defer {
            databaseTime += ContinuousClock.now - t
            writing = false
        }
        do {
            return try await op(store, job, lines)
        } catch {
            pending = lines + pending
            if pending.count > 5000 {
                let dropped = pending.count - 5000
                pending.removeFirst(dropped)
                pending[0] = "[\(dropped) log lines dropped while the database was unavailable]"
            }
            throw error
        }
    }
}
