import Foundation
import RunnerCore

/// Reads the Cline CLI's `--json` output, line by line, in either format, and
/// turns it into readable log lines while it collects the run's outcome:
/// - 3.x: `{"ts":…,"type":"run_start"|"agent_event"|"run_result"|"run_aborted"|
///   "run_abort_requested"|"error",…}`; errors as `{"type":"error","message":…}`
///   on stderr; the model and token usage in `run_result`.
/// - 2.x: `{"ts":…,"type":"say"|"ask","say"|"ask":kind,"text":…}` (Cline's
///   messages), `{"type":"task_started"}` and `{"type":"error","message":…}`;
///   token usage in the JSON `text` of `api_req_started` messages.
/// Other lines are logged as they are.
public struct ClineOutput {
    /// Errors the agent reported (JSON errors, failed API requests,
    /// unrecoverable error events), oldest first.
    public private(set) var errors: [String] = []
    /// The most errors kept (the newest): the output is the agent's.
    static let maxErrors = 8

    mutating func note(error message: String) {
        if errors.count == Self.maxErrors { errors.removeFirst() }
        errors.append(Self.clip(message))
    }
    /// The message of a `run_aborted` line, if one came.
    public private(set) var aborted: String?
    /// "cline-3" or "cline-2" once a line of either format was seen.
    public private(set) var format: String?
    private var usage3 = AgentUsage()
    /// 2.x usage per message timestamp (a message may be re-sent updated).
    private var requests2: [Int64: AgentUsage] = [:]
    private var model2: (provider: String?, model: String?)

    /// The longest text one log line carries.
    static let maxText = 2000
    /// The job events the lines made (`ClineEvents`), taken as they come.
    public var trajectory: ClineEvents

    /// `repoDir`: where the agent writes (the size of a file it wrote is read there).
    public init(repoDir: String? = nil) { trajectory = ClineEvents(repoDir: repoDir) }

    /// The model and usage reported so far (nil fields: not reported).
    public var usage: AgentUsage {
        guard format == "cline-2" else { return usage3.bounded }
        var u = AgentUsage()
        u.format = format
        u.provider = model2.provider
        u.model = model2.model
        for r in requests2.values {
            u.inputTokens = AgentUsage.sum(u.inputTokens, r.inputTokens)
            u.outputTokens = AgentUsage.sum(u.outputTokens, r.outputTokens)
            u.cacheReadTokens = AgentUsage.sum(u.cacheReadTokens, r.cacheReadTokens)
            u.cacheWriteTokens = AgentUsage.sum(u.cacheWriteTokens, r.cacheWriteTokens)
            u.cost = AgentUsage.sum(u.cost, r.cost)
        }
        let requests = requests2.values.filter { $0.iterations == 1 }.count
        u.iterations = requests > 0 ? requests : nil
        return u.bounded
    }

    /// The log line for one output line (nil: nothing worth a line).
    public mutating func readable(_ line: String, isErr: Bool) -> String? {
        guard line.hasPrefix("{"), let v = try? JSONValue.parse(line), let type = v["type"]?.stringValue else {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { return nil }
            return (isErr ? "cline stderr: " : "cline: ") + Self.clip(line)
        }
        trajectory.read(v, type: type)
        switch type {
        case "error":
            let message = v["message"]?.stringValue ?? v["text"]?.stringValue ?? v.jsonString
            note(error: message)
            return "cline error: " + Self.clip(message)
        case "say", "ask": format = "cline-2"; return message2(v, type)
        case "task_started": format = "cline-2"; return "cline: task started " + (v["taskId"]?.stringValue ?? "")
        case "run_start", "agent_event", "run_result", "run_aborted", "run_abort_requested", "team_restored":
            format = "cline-3"; usage3.format = format
            return line3(v, type)
        default:
            return "cline: " + Self.clip(v.jsonString)
        }
    }

    // MARK: 3.x

    private mutating func line3(_ v: JSONValue, _ type: String) -> String? {
        switch type {
        case "run_start":
            usage3.provider = v["providerId"]?.stringValue ?? usage3.provider
            usage3.model = v["modelId"]?.stringValue ?? usage3.model
            return "cline: run started: provider \(usage3.provider ?? "?"), model \(usage3.model ?? "?")"
                + (v["mode"]?.stringValue.map { ", mode \($0)" } ?? "")
        case "run_result":
            let u = v["aggregateUsage"]?.objectValue != nil ? v["aggregateUsage"]! : (v["usage"] ?? .null)
            usage3.inputTokens = Self.int(u["inputTokens"]) ?? usage3.inputTokens
            usage3.outputTokens = Self.int(u["outputTokens"]) ?? usage3.outputTokens
            usage3.cacheReadTokens = Self.int(u["cacheReadTokens"]) ?? usage3.cacheReadTokens
            usage3.cacheWriteTokens = Self.int(u["cacheWriteTokens"]) ?? usage3.cacheWriteTokens
            usage3.cost = Self.double(u["totalCost"]) ?? usage3.cost
            usage3.model = v["model"]?["id"]?.stringValue ?? usage3.model
            usage3.provider = v["model"]?["provider"]?.stringValue ?? usage3.provider
            usage3.iterations = Self.int(v["iterations"]) ?? usage3.iterations
            usage3.durationMs = Self.int(v["durationMs"]) ?? usage3.durationMs
            usage3.finishReason = v["finishReason"]?.stringValue ?? "unknown"
            let text = v["text"]?.stringValue.map { Self.clip($0) } ?? ""
            return "cline: run finished (\(usage3.finishReason!))" + (text.isEmpty ? "" : ": " + text)
        case "run_aborted":
            let why = v["message"]?.stringValue ?? v["reason"]?.stringValue ?? "aborted"
            aborted = why
            return "cline: run aborted: " + Self.clip(why)
        case "run_abort_requested":
            return "cline: abort requested (\(v["reason"]?.stringValue ?? "?"))"
        case "team_restored":
            return nil
        default:
            return event3(v["event"] ?? .null)
        }
    }

    private mutating func event3(_ e: JSONValue) -> String? {
        let content = e["contentType"]?.stringValue
        switch e["type"]?.stringValue {
        case "content_start" where content == "tool":
            return "cline tool: " + (e["toolName"]?.stringValue ?? "?") + Self.toolSummary(e["input"])
        case "content_end" where content == "tool":
            guard let err = e["error"]?.stringValue, !err.isEmpty else { return nil }
            return "cline tool \(e["toolName"]?.stringValue ?? "?") failed: " + Self.clip(err)
        case "content_end" where content == "text":
            guard let t = e["text"]?.stringValue, !t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
            return "cline: " + Self.clip(t)
        case "content_end" where content == "reasoning":
            guard let t = e["reasoning"]?.stringValue ?? e["text"]?.stringValue, !t.isEmpty else { return nil }
            return "cline [reasoning]: " + Self.clip(t, 300)
        case "notice":
            return "cline notice: " + Self.clip(e["message"]?.stringValue ?? "")
        case "usage":
            usage3.inputTokens = Self.int(e["totalInputTokens"]) ?? usage3.inputTokens
            usage3.outputTokens = Self.int(e["totalOutputTokens"]) ?? usage3.outputTokens
            usage3.cacheReadTokens = Self.int(e["totalCacheReadTokens"]) ?? usage3.cacheReadTokens
            usage3.cacheWriteTokens = Self.int(e["totalCacheWriteTokens"]) ?? usage3.cacheWriteTokens
            usage3.cost = Self.double(e["totalCost"]) ?? usage3.cost
            return nil
        case "done":
            return "cline: agent done (\(e["reason"]?.stringValue ?? "?"))"
                + (Self.int(e["iterations"]).map { " after \($0) iterations" } ?? "")
        case "error":
            let message = e["error"]?["message"]?.stringValue ?? e["error"]?.stringValue ?? "unknown error"
            if e["recoverable"]?.boolValue == true { return "cline error (recoverable): " + Self.clip(message) }
            note(error: message)
            return "cline error: " + Self.clip(message)
        default:
            return nil // streaming chunks, iteration marks, tool progress
        }
    }

    // MARK: 2.x

    private mutating func message2(_ v: JSONValue, _ type: String) -> String? {
        if v["partial"]?.boolValue == true { return nil }
        let kind = v[type]?.stringValue ?? "?"
        let text = v["text"]?.stringValue ?? ""
        if let info = v["modelInfo"] {
            model2 = (info["providerId"]?.stringValue ?? model2.provider, info["modelId"]?.stringValue ?? model2.model)
        }
        switch (type, kind) {
        case ("say", "text"): return text.isEmpty ? nil : "cline: " + Self.clip(text)
        case ("say", "completion_result"), ("ask", "completion_result"):
            return text.isEmpty ? nil : "cline: completed: " + Self.clip(text)
        case ("say", "task"): return "cline task: " + Self.clip(text, 300)
        case ("say", "reasoning"): return "cline [reasoning]: " + Self.clip(v["reasoning"]?.stringValue ?? text, 300)
        case ("say", "api_req_started"), ("say", "subagent_usage"):
            guard let info = try? JSONValue.parse(text) else { return nil }
            var r = AgentUsage()
            r.inputTokens = Self.int(info["tokensIn"])
            r.outputTokens = Self.int(info["tokensOut"])
            r.cacheReadTokens = Self.int(info["cacheReads"])
            r.cacheWriteTokens = Self.int(info["cacheWrites"])
            r.cost = Self.double(info["cost"])
            r.iterations = kind == "api_req_started" ? 1 : 0
            requests2[v["ts"]?.intValue ?? Int64(requests2.count)] = r
            return nil
        case ("say", "tool"), ("ask", "tool"):
            guard let t = try? JSONValue.parse(text), let tool = t["tool"]?.stringValue else {
                return "cline tool: " + Self.clip(text, 500)
            }
            return "cline tool: " + tool + Self.toolSummary(t)
        case ("say", "command"), ("ask", "command"): return "cline command: " + Self.clip(text, 500)
        case ("say", "command_output"), ("ask", "command_output"): return text.isEmpty ? nil : "cline output: " + Self.clip(text, 500)
        case ("say", "error"), ("ask", "api_req_failed"), ("ask", "mistake_limit_reached"):
            let message = kind == "api_req_failed" ? "API request failed: " + text : text
            note(error: message)
            return "cline error: " + Self.clip(message)
        case ("say", "error_retry"), ("say", "api_req_retried"): return "cline: retrying: " + Self.clip(text, 300)
        case ("ask", "followup"):
            let question = (try? JSONValue.parse(text))?["question"]?.stringValue ?? text
            return "cline asks: " + Self.clip(question)
        case ("say", "api_req_finished"), ("say", "checkpoint_created"), ("say", "hook_status"),
             ("say", "hook_output_stream"), ("say", "task_progress"):
            return nil
        default:
            return text.isEmpty ? nil : "cline [\(kind)]: " + Self.clip(text, 500)
        }
    }

    // MARK: helpers

    /// " <path>" (or command, URL, query) from a tool's input, if it has one.
    static func toolSummary(_ input: JSONValue?) -> String {
        guard let input else { return "" }
        for key in ["path", "file_path", "filePath", "command", "commands", "url", "query", "regex", "pattern"] {
            if let s = input[key]?.stringValue, !s.isEmpty { return " " + clip(s, 300) }
            if let list = input[key]?.arrayValue?.compactMap(\.stringValue), !list.isEmpty {
                return " " + clip(list.joined(separator: "; "), 300)
            }
        }
        if case .object(let o) = input, !o.isEmpty { return " " + clip(input.jsonString, 200) }
        return ""
    }

    /// One line of at most `max` characters: newlines shown as " ⏎ ".
    static func clip(_ s: String, _ max: Int = maxText) -> String {
        var t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        if t.contains(where: \.isNewline) {
            t = t.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: " ⏎ ")
        }
        return t.count > max ? String(t.prefix(max)) + "…" : t
    }

    static func int(_ v: JSONValue?) -> Int? { v?.intValue.map { Int($0) } }

    static func double(_ v: JSONValue?) -> Double? {
        switch v {
        case .double(let d)?: d
        case .int(let i)?: Double(i)
        case .string(let s)?: Double(s)
        default: nil
        }
    }

}
