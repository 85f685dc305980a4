import Foundation

extension JobEvent {
    /// One line of text for the event (the CLI's `events`; the dashboard's
    /// timeline has the same in its script): its kind's main fields.
    public var summary: String {
        func s(_ k: String) -> String? {
            guard let v = data[k], !v.isNull else { return nil }
            return v.stringValue ?? v.jsonString
        }
        func join(_ parts: String?...) -> String { parts.compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " · ") }
        switch kind {
        case .stage: return join(s("stage"), s("status"), s("code"), s("message"))
        case .modelRequest: return join(s("model"), s("provider"), s("iteration").map { "iteration " + $0 })
        case .modelResponse, .providerCall:
            return join(s("model"), s("inputTokens").map { $0 + " in" }, s("outputTokens").map { $0 + " out" },
                        (s("costUsd") ?? s("cost")).map { "$" + $0 }, s("durationMs").map { $0 + " ms" }, s("status"))
        case .toolCall: return join(s("tool"), s("input"))
        case .toolResult: return join(s("tool"), data["ok"]?.boolValue == false ? "failed" : "ok", s("error") ?? s("output"))
        case .command: return join(s("command"), s("exitCode").map { "exit " + $0 })
        case .fileWrite: return join(s("operation"), s("path"), s("bytes").map { $0 + " bytes" })
        case .message: return join(s("role"), s("text"))
        case .error: return join(s("source"), s("message"), data["recoverable"]?.boolValue == true ? "recoverable" : nil)
        case .egressAllowed: return join(s("target"), s("detail"))
        case .egressDenied: return join(s("target"), s("reason"), s("detail"))
        case .budget: return join(s("message"))
        case .generator: return join(s("generator"), s("step"), s("detail"), s("files").map { $0 + " files" })
        case .validation: return join(s("finding"), data["ok"]?.boolValue == true ? "ok" : "failed", s("detail"))
        case .publish: return join(s("step"), s("branch"), s("commit"), s("detail"))
        case .changes: return join(s("commit"), s("total").map { $0 + " files" })
        case .diff: return join(s("path"), s("bytes").map { $0 + " bytes" })
        case .truncated: return join(s("detail"))
        }
    }
}
