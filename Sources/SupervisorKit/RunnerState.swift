import Foundation
import JobStore
import RunnerCore

/// The first reason to stop a child, whether its lease is gone (fenced),
/// and whether it has exited.
final class ChildControl: Sendable {
    private let state = Locked<(reason: StopReason?, exited: Bool, fenced: Bool)>((nil, false, false))
    func stop(_ r: StopReason) { state.withLock { if $0.reason == nil { $0.reason = r } } }
    var reason: StopReason? { state.withLock { $0.reason } }
    /// The lease is lost, or about to lapse: whatever stop came first (a
    /// checkpoint under way included), the child is killed at once and gets
    /// no push token. Also the stop reason when none was set.
    func fence() { state.withLock { $0.fenced = true; if $0.reason == nil { $0.reason = .leaseLost } } }
    /// Whether `fence` was called: the child must not push any more.
    var fenced: Bool { state.withLock { $0.fenced } }
    func markExited() { state.withLock { $0.exited = true } }
    /// The child took a stop line (its `stopping` event).
    func acknowledgeStop() { acknowledged.withLock { $0 = true } }
    var stopAcknowledged: Bool { acknowledged.withLock { $0 } }
    private let acknowledged = Locked(false)
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

/// One job's log lines and stages, handed to the supervisor's `WriteBatcher`
/// (they reach the database with its next flush, or with the job's outcome).
struct LogBatcher: Sendable {
    let job: ClaimedJob
    let writes: WriteBatcher

    /// A line the job produced (its child's events and stderr, its egress
    /// proxy's denials): within the attempt's `LogBudget`.
    func add(_ line: String) async { await writes.add(job, line) }

    /// A line of the supervisor's own (a handful per job): cut to the line
    /// bound, never dropped for the job's.
    func note(_ line: String) async { await writes.add(job, line, own: true) }

    func stage(_ stage: JobStage) async { await writes.stage(job, stage) }

    /// An event of the job's stream (numbered by the `WriteBatcher`), redacted and bounded here.
    func event(_ event: JobEvent, redactor: Redactor) async { await writes.event(job, event.redacted(redactor).bounded) }

    /// The lines not yet written, for the outcome's write (the relay is over),
    /// and how long that waited for a flush under way.
    func takeAll() async -> (lines: [String], waited: Duration) { await writes.takeLines(job) }
}
