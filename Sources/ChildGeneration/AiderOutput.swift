import Foundation
import RunnerCore

/// aider's console output (`--no-pretty`, no colour) as readable log lines
/// and usage. aider echoes the model's whole answer, file contents included:
/// those lines are counted, not logged. Its own status lines are logged:
/// the banner, each file it edited, each request's token report, warnings
/// and errors (LiteLLM's among them).
struct AiderOutput {
    private(set) var usage: AgentUsage = {
        var u = AgentUsage()
        u.format = "aider"
        return u
    }()
    /// The last error message (a failure's reason), clipped: aider's output
    /// is the agent's, so nothing of it is kept without a bound.
    private(set) var lastError: String?
    /// How many edits aider reported.
    private(set) var edits = 0
    /// Lines of the model's answer that were not logged.
    private(set) var skipped = 0

    /// aider's own status lines, by prefix.
    static let statusPrefixes = ["Aider v", "Model:", "Git repo:", "Repo-map:", "Added ", "Creating empty file",
                                 "Did not apply edit", "Only 3 reflections", "No changes made", "Retrying in",
                                 "The API provider", "Warning", "Unable to", "Can't", "Cost:", "Skipping"]
    /// Markers of an error line.
    static let errorMarkers = ["litellm.", "Error", "error:", "Traceback", "Exception"]

    /// The log line for one output line, or nil when it is not logged.
    mutating func readable(_ line: String, isErr: Bool) -> String? {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return nil }
        if text.hasPrefix("Applied edit to ") {
            let file = String(text.dropFirst("Applied edit to ".count))
            edits += 1
            return "aider: edited " + file
        }
        if text.hasPrefix("Tokens:") {
            record(tokens: text)
            return "aider: " + text
        }
        if Self.errorMarkers.contains(where: { text.hasPrefix($0) || text.contains(": " + $0) }) {
            lastError = LogBounds.clip(text, bytes: 512)
            return "aider error: " + text
        }
        if isErr || Self.statusPrefixes.contains(where: text.hasPrefix) { return "aider: " + text }
        skipped += 1
        return nil
    }

    /// One request's report: "Tokens: 1.2k sent, 64 cache write, 800 cache
    /// hit, 210 received. Cost: $0.01 message, $0.02 session."
    mutating func record(tokens text: String) {
        usage.iterations = AgentUsage.sum(usage.iterations, 1)
        let (counts, costs) = Self.split(text)
        for (value, label) in counts {
            switch label {
            case "sent": usage.inputTokens = AgentUsage.sum(usage.inputTokens, value)
            case "received": usage.outputTokens = AgentUsage.sum(usage.outputTokens, value)
            case "cache hit": usage.cacheReadTokens = AgentUsage.sum(usage.cacheReadTokens, value)
            case "cache write": usage.cacheWriteTokens = AgentUsage.sum(usage.cacheWriteTokens, value)
            default: break
            }
        }
        if let session = costs["session"] { usage.cost = session }
    }

    /// The "N label" counts and "$x label" costs of a token report.
    static func split(_ text: String) -> ([(Int, String)], [String: Double]) {
        var counts: [(Int, String)] = [], costs: [String: Double] = [:]
        let body = text.replacingOccurrences(of: "Tokens:", with: "").replacingOccurrences(of: "Cost:", with: ",")
        for part in body.split(separator: ",") {
            var item = part.trimmingCharacters(in: .whitespaces)
            while item.hasSuffix(".") { item.removeLast() }
            guard let space = item.firstIndex(of: " ") else { continue }
            let number = String(item[..<space]), label = item[item.index(after: space)...].trimmingCharacters(in: .whitespaces)
            if number.hasPrefix("$") {
                if let v = Double(number.dropFirst()) { costs[label] = v }
            } else if let v = count(number) {
                counts.append((v, label))
            }
        }
        return (counts, costs)
    }

    /// "900", "1.2k", "3.4M" as a count; nil for anything else, or above 10^15.
    static func count(_ s: String) -> Int? {
        let scale: Double = s.hasSuffix("k") ? 1_000 : s.hasSuffix("M") ? 1_000_000 : 1
        let digits = scale == 1 ? s : String(s.dropLast())
        guard let v = Double(digits), v.isFinite, v >= 0, v * scale < 1e15 else { return nil }
        return Int((v * scale).rounded())
    }
}
