#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Writes NDJSON events to stdout (the supervisor's pipe), redacting every
/// log line. One `write` per event, so lines never interleave; each line
/// follows `LineFraming` (the supervisor reads with the same limit).
struct Emitter {
    let redactor: Redactor

    func emit(_ event: ChildEvent) {
        var e = event
        switch event {
        case .log(let line): e = .log(redactor.redact(line))
        case .failed(var f): f.message = redactor.redact(f.message); e = .failed(f)
        default: break
        }
        // One line within LineFraming.maxLineBytes: long log lines are cut
        // with a marker, a result's metadata is bounded so it always fits.
        try? writeAll(1, LineFraming.encode(e))
    }

    func log(_ line: String) { emit(.log(line)) }
    func stage(_ s: JobStage) { emit(.stage(s)) }
}
