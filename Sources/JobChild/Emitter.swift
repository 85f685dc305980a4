#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Writes NDJSON events to stdout (the supervisor's pipe), redacting every
/// log line. One `write` per event, so lines never interleave.
struct Emitter {
    let redactor: Redactor

    func emit(_ event: ChildEvent) {
        var e = event
        switch event {
        case .log(let line): e = .log(redactor.redact(line))
        case .failed(var f): f.message = redactor.redact(f.message); e = .failed(f)
        default: break
        }
        guard var data = try? JSONEncoder().encode(e) else { return }
        data.append(0x0A)
        try? writeAll(1, data)
    }

    func log(_ line: String) { emit(.log(line)) }
    func stage(_ s: JobStage) { emit(.stage(s)) }
}
