#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ChildGeneration
import RunnerCore

/// The job child's stdin: the ticket (first line), then, when asked for, the
/// push token (a `ChildSecrets` line). The supervisor keeps it open for the
/// whole job; EOF means it is gone, and then the job ends at once: every
/// process of the job is killed and the child exits without publishing.
enum ChildInput {
    private static let pending = Locked<[UInt8]>([])
    private static let secrets = Locked<ChildSecrets?>(nil)
    /// A line from the supervisor that is not a `ChildSecrets` message.
    private static let malformed = Locked<JobFailure?>(nil)
    private static let arrived = DispatchSemaphore(value: 0)

    /// Reads the first line (at most 64 MiB) on the calling thread.
    static func readTicketLine() -> [UInt8]? {
        var line = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while line.count <= 64 << 20 {
            let n = read(0, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return line.isEmpty ? nil : line } // an older supervisor closes stdin instead
            if let nl = buf[0..<n].firstIndex(of: 0x0A) {
                line += buf[0..<nl]
                pending.withLock { $0 = Array(buf[(nl + 1)..<n]) }
                return line
            }
            line += buf[0..<n]
        }
        return nil
    }

    /// Watches stdin on a thread of its own (start it after confinement).
    static func startWatching() {
        Thread.detachNewThread {
            var data = pending.withLock { $0 }
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                while let nl = data.firstIndex(of: 0x0A) {
                    let line = Array(data[..<nl])
                    data.removeSubrange(...nl)
                    // A stop first: any object would decode as `ChildSecrets`, whose fields are all optional.
                    if let stop = try? JSONDecoder().decode(ChildStop.self, from: Data(line)) {
                        Self.stopped(stop)
                        continue
                    }
                    if let s = try? JSONDecoder().decode(ChildSecrets.self, from: Data(line)) {
                        secrets.withLock { $0 = s }
                    } else {
                        // Never quoted: the supervisor's lines carry the job's secrets.
                        let failure = JobFailure(.internal, "a line from the supervisor on stdin (\(line.count) bytes) "
                                                     + "is not a protocol message")
                        malformed.withLock { if $0 == nil { $0 = failure } }
                    }
                    arrived.signal()
                }
                let n = read(0, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                data += buf[0..<n]
                if data.count > 1 << 20 { data.removeAll() }
            }
            // The supervisor is gone: nothing this job does can be recorded any more.
            ParentWatch.markOrphaned()
            arrived.signal()
            AgentReaper.killAll()
            exit(0)
        }
    }

    /// What a stop line does (`Checkpoint.start`, set by the pipeline before
    /// the watch starts); nil: the job's processes are killed and the child exits.
    static let onStop = Locked<(@Sendable (ChildStop) -> Void)?>(nil)

    /// The supervisor asked the job to stop (`ChildStop`): only the first
    /// stop counts.
    private static func stopped(_ stop: ChildStop) {
        guard firstStop.withLock({ first in defer { first = false }; return first }) else { return }
        if let handler = onStop.withLock({ $0 }) {
            handler(stop)
        } else {
            AgentReaper.killAll()
            exit(0)
        }
    }
    private static let firstStop = Locked(true)

    /// Asks the supervisor for the push token and waits for it (nil: none
    /// configured), with what the egress proxy denied meanwhile. Throws
    /// `lease_lost` when the supervisor is gone, and `internal` naming the
    /// line at once when its answer does not decode.
    static func pushToken(emitter: Emitter, timeoutSeconds: Int = 60) throws -> (String?, EgressReport?) {
        emitter.emit(.pushTokenRequest)
        let answered = arrived.wait(timeout: .now() + .seconds(timeoutSeconds)) == .success
        if let failure = malformed.withLock({ $0 }) { throw failure }
        // Taken once: a second request (the resumed checkpoint's fetch, then the push) waits for its own answer.
        guard answered, !ParentWatch.orphaned, let s = secrets.withLock({ s in defer { s = nil }; return s }) else {
            throw JobFailure(.leaseLost, "the supervisor did not answer the push-token request")
        }
        return (s.githubToken, s.egress)
    }
}
