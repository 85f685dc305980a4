#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Writes NDJSON events to stdout (the supervisor's pipe), redacting every
/// log line. One `write` per event, so lines never interleave; each line
/// follows `LineFraming` (the supervisor reads with the same limit). Log
/// lines are bounded in bytes (`LogBudget`: JOB_LOG_LINE_BYTES each,
/// JOB_LOG_BYTES in all, then one marker line and nothing more).
final class Emitter: Sendable {
    private let redactor: Locked<Redactor>
    private let secrets: Locked<[String]>
    private let budget: Locked<LogBudget>

    init(secrets: [String], log bounds: LogBounds = LogBounds()) {
        self.secrets = Locked(secrets)
        redactor = Locked(Redactor(secrets: secrets))
        budget = Locked(LogBudget(bounds))
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
        default: break
        }
        // One line within LineFraming.maxLineBytes: long log lines are cut
        // with a marker, a result's metadata is bounded so it always fits.
        try? writeAll(1, LineFraming.encode(e))
    }

    func log(_ line: String) { emit(.log(line)) }
    func stage(_ s: JobStage) { emit(.stage(s)) }
}
