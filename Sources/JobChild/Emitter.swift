#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Writes NDJSON events to stdout (the supervisor's pipe), redacting every
/// log line. One `write` per event, so lines never interleave; each line
/// follows `LineFraming` (the supervisor reads with the same limit). Log
/// lines are bounded in bytes (`LogBudget`: JOB_LOG_LINE_BYTES each,
/// JOB_LOG_BYTES in all, then one marker line and nothing more); events are
/// redacted whole and bounded (`JobEvent.bounded`), at most JOB_EVENTS_MAX.
final class Emitter: Sendable {
    private let redactor: Locked<Redactor>
    private let secrets: Locked<[String]>
    private let budget: Locked<LogBudget>
    /// The events sent so far, and the most this attempt sends (JOB_EVENTS_MAX).
    private let events: Locked<(sent: Int, max: Int)>

    init(secrets: [String], log bounds: LogBounds = LogBounds(), eventsMax: Int = ChildSettings.defaultEventsMax) {
        self.secrets = Locked(secrets)
        redactor = Locked(Redactor(secrets: secrets))
        budget = Locked(LogBudget(bounds))
        events = Locked((0, eventsMax))
    }

    /// Adds a secret that arrived later (the push token).
    func addSecret(_ s: String) {
        let all = secrets.withLock { $0.append(s); return $0 }
        redactor.withLock { $0 = Redactor(secrets: all) }
    }

    func emit(_ event: ChildEvent) {
        let r = redactor.withLock { $0 }
        var e = event
        switch event {
        case .log(let line):
            guard let kept = budget.withLock({ $0.admit(r.redact(line)) }) else { return }
            e = .log(kept)
        case .failed(var f): f.message = r.redact(f.message); e = .failed(f)
        case .event(let ev):
            // Redacted before it is bounded: a clipped secret would escape the redactor's patterns.
            // At most JOB_EVENTS_MAX, the last of them the marker (the supervisor holds the job to it again).
            let admitted = events.withLock { c -> JobEvent? in
                guard c.sent < c.max else { return nil }
                c.sent += 1
                return c.sent == c.max ? .truncated(max: c.max) : ev
            }
            guard let admitted else { return }
            e = .event(admitted.redacted(r).bounded)
        default: break
        }
        // One line within LineFraming.maxLineBytes: long log lines are cut
        // with a marker, a result's metadata is bounded so it always fits.
        try? writeAll(1, LineFraming.encode(e))
    }

    func log(_ line: String) { emit(.log(line)) }
    func event(_ e: JobEvent) { emit(.event(e)) }
    func stage(_ s: JobStage) { emit(.stage(s)) }
}
