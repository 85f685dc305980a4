import Logging
import RunnerCore

/// A `Logger` whose lines (level, message, metadata) are kept for a test to read.
final class CapturedLog: Sendable {
    private let entries = Locked<[String]>([])

    /// Every line so far: "level message key=value ...".
    var lines: [String] { entries.withLock { $0 } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(log: self) }
    }

    struct Handler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }
            let text = "\(level) \(message)" + all.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
            log.entries.withLock { $0.append(text) }
        }
    }
}
