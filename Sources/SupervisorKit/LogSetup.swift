import Foundation
import Logging
import RunnerCore

/// Bootstraps swift-log once, for the executables only (the supervisor and
/// the dashboard): one line per event on stderr, JSON or text (with
/// systemd's `<N>` priority prefixes), with every configured secret redacted.
public enum LogSetup {
    public static func bootstrap(_ config: RunnerConfiguration) {
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        let json = config.logFormat == .json
        let redactor = Redactor(secrets: [config.githubToken, config.geminiAPIKey, config.clineAPIKey, config.dashboardToken].compactMap { $0 }
            + config.clineProviderHeaders.map(\.value))
        LoggingSystem.bootstrap { label in
            var h = LineLogHandler(label: label, json: json, redactor: redactor)
            h.logLevel = level
            return h
        }
    }
}

/// Writes one line per log event to stderr.
public struct LineLogHandler: LogHandler {
    let label: String
    let json: Bool
    let redactor: Redactor
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        if let error = event.error { all["error"] = "\(error)" }
        let text: String
        if json {
            var o: [String: JSONValue] = ["ts": .string(Date().formatted(.iso8601)), "level": .string(level.rawValue),
                                          "msg": .string(redactor.redact(message.description))]
            for (k, v) in all { o[k] = .string(redactor.redact("\(v)")) }
            text = JSONValue.object(o).jsonString
        } else {
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text = "<\(Self.priority(level))>\(level.rawValue): " + redactor.redact(message.description + (fields.isEmpty ? "" : " " + fields))
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// syslog priorities, as systemd's journal reads them from a `<N>` prefix.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
