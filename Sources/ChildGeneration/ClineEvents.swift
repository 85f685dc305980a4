#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Turns the Cline CLI's `--json` lines (already parsed by `ClineOutput`)
/// into the job's events (`JobEvent`), in either format:
/// - 3.x: `iteration_start` → model_request; `usage` → model_response (the
///   call's tokens, its duration since the iteration started); a tool's
///   `content_start`/`content_end` → tool_call/tool_result, and for a command
///   tool a command (with its exit code when the result has one), for an
///   editing tool a file_write; text, reasoning, notices and the run's
///   result → message; errors → error.
/// - 2.x: `api_req_started` → model_request, and model_response once its
///   tokens are known (the message is re-sent with them, same `ts`); `tool`
///   → tool_call (and file_write for a created or edited file); `command` →
///   command; `command_output` → tool_result; text, reasoning, the task and
///   the completion → message; errors → error.
/// Everything here is the agent's word: the child's `Emitter` redacts and
/// bounds each event before it leaves.
public struct ClineEvents {
    /// The events made since the last `take()`.
    private var pending: [JobEvent] = []
    /// 3.x: tool calls by id (name, input, when started).
    private var tools: [String: (name: String, input: JSONValue?, started: Date)] = [:]
    /// 3.x: when the current iteration's model call started.
    private var iterationStarted: Date?
    private var model: String?
    private var provider: String?
    /// 2.x: the `ts` of api_req_started messages seen (with their tokens or not).
    private var requests2: [Int64: Bool] = [:]
    /// The repository the agent writes (file sizes are read only below it).
    let repoDir: String?

    static let agent = "cline"
    /// Tool names (lowercased) that run commands.
    static let commandTools: Set<String> = ["run_commands", "execute_command", "bash", "shell", "run_command", "command"]
    /// Tool names (lowercased) that write files.
    static let editTools: Set<String> = ["editor", "write_to_file", "replace_in_file", "apply_patch", "edit", "write",
                                         "create_file", "str_replace_editor", "newfilecreated", "editedexistingfile",
                                         "filedeleted"]

    public init(repoDir: String? = nil) { self.repoDir = repoDir }

    /// The events made since the last call.
    public mutating func take() -> [JobEvent] {
        defer { pending = [] }
        return pending
    }

    /// Reads one parsed line of `type`.
    mutating func read(_ v: JSONValue, type: String) {
        switch type {
        case "error":
            add(.error(source: Self.agent, message: v["message"]?.stringValue ?? v["text"]?.stringValue ?? v.jsonString))
        case "run_start":
            model = v["modelId"]?.stringValue ?? model
            provider = v["providerId"]?.stringValue ?? provider
        case "run_result":
            add(.message(agent: Self.agent, role: "result", text: v["text"]?.stringValue ?? "",
                         extra: ["finishReason": v["finishReason"]?.stringValue.map(JSONValue.string) ?? .null,
                                 "iterations": v["iterations"]?.intValue.map(JSONValue.int) ?? .null]))
        case "run_aborted":
            add(.error(source: Self.agent, message: "run aborted: " + (v["message"]?.stringValue ?? v["reason"]?.stringValue ?? "?")))
        case "agent_event": event3(v["event"] ?? .null)
        case "say", "ask": message2(v, type)
        default: break
        }
    }

    private mutating func add(_ e: JobEvent) { pending.append(e) }

    // MARK: 3.x

    private mutating func event3(_ e: JSONValue) {
        let content = e["contentType"]?.stringValue
        switch e["type"]?.stringValue {
        case "iteration_start":
            iterationStarted = Date()
            add(.modelRequest(agent: Self.agent, model: model, provider: provider, iteration: ClineOutput.int(e["iteration"])))
        case "usage":
            var u = AgentUsage()
            u.model = model
            u.provider = provider
            u.inputTokens = ClineOutput.int(e["inputTokens"])
            u.outputTokens = ClineOutput.int(e["outputTokens"])
            u.cacheReadTokens = ClineOutput.int(e["cacheReadTokens"])
            u.cacheWriteTokens = ClineOutput.int(e["cacheWriteTokens"])
            u.cost = ClineOutput.double(e["cost"])
            let ms = iterationStarted.map { Int(Date().timeIntervalSince($0) * 1000) }
            add(.modelResponse(agent: Self.agent, usage: u, durationMs: ms))
        case "content_start" where content == "tool":
            let name = e["toolName"]?.stringValue ?? "?"
            let id = e["toolCallId"]?.stringValue ?? "t\(tools.count)"
            if tools.count < 1000 { tools[id] = (name, e["input"], Date()) }
            add(.toolCall(agent: Self.agent, tool: name, id: id, input: Self.inputText(e["input"])))
        case "content_end" where content == "tool":
            let id = e["toolCallId"]?.stringValue
            let call = id.flatMap { tools.removeValue(forKey: $0) }
            let name = e["toolName"]?.stringValue ?? call?.name ?? "?"
            let error = e["error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
            let output = Self.text(e["output"])
            add(.toolResult(agent: Self.agent, tool: name, id: id, error: error, output: output,
                            durationMs: ClineOutput.int(e["durationMs"])))
            toolEffects(name, input: call?.input ?? e["input"], result: e, error: error, output: output)
        case "content_end" where content == "text":
            if let t = e["text"]?.stringValue, !t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                add(.message(agent: Self.agent, role: "assistant", text: t))
            }
        case "content_end" where content == "reasoning":
            if let t = e["reasoning"]?.stringValue ?? e["text"]?.stringValue, !t.isEmpty {
                add(.message(agent: Self.agent, role: "reasoning", text: t))
            }
        case "notice":
            add(.message(agent: Self.agent, role: "notice", text: e["message"]?.stringValue ?? ""))
        case "error":
            let message = e["error"]?["message"]?.stringValue ?? e["error"]?.stringValue ?? "unknown error"
            add(.error(source: Self.agent, message: message, recoverable: e["recoverable"]?.boolValue == true))
        default: break
        }
    }

    /// The command run or the file written by a tool call that ended.
    private mutating func toolEffects(_ name: String, input: JSONValue?, result: JSONValue, error: String?, output: String?) {
        let lower = name.lowercased()
        if Self.commandTools.contains(lower) {
            let commands = input?["commands"]?.arrayValue?.compactMap(\.stringValue)
                ?? (input?["command"]?.stringValue).map { [$0] } ?? []
            let code = ClineOutput.int(result["exitCode"] ?? result["exit_code"] ?? result["output"]?["exitCode"])
                ?? Self.exitCode(in: (error ?? "") + " " + (output ?? ""))
            for c in commands.prefix(20) {
                add(.command(agent: Self.agent, command: c, exitCode: code, output: error ?? output))
            }
        } else if Self.editTools.contains(lower), error == nil, let path = Self.path(input) {
            let op = input?["command"]?.stringValue == "create" ? "create" : "edit"
            add(.fileWrite(agent: Self.agent, path: path, operation: op,
                           bytes: Self.contentBytes(input) ?? size(of: path)))
        }
    }

    // MARK: 2.x

    private mutating func message2(_ v: JSONValue, _ type: String) {
        if v["partial"]?.boolValue == true { return }
        let kind = v[type]?.stringValue ?? "?"
        let text = v["text"]?.stringValue ?? ""
        if let info = v["modelInfo"] {
            model = info["modelId"]?.stringValue ?? model
            provider = info["providerId"]?.stringValue ?? provider
        }
        switch (type, kind) {
        case ("say", "api_req_started"):
            let ts = v["ts"]?.intValue ?? Int64(requests2.count)
            let info = try? JSONValue.parse(text)
            let done = info?["tokensIn"] != nil || info?["tokensOut"] != nil
            if requests2[ts] == nil {
                if requests2.count < 10_000 { requests2[ts] = false }
                add(.modelRequest(agent: Self.agent, model: model, provider: provider, iteration: requests2.count))
            }
            if done, requests2[ts] == false, let info {
                requests2[ts] = true
                var u = AgentUsage()
                u.model = model
                u.provider = provider
                u.inputTokens = ClineOutput.int(info["tokensIn"])
                u.outputTokens = ClineOutput.int(info["tokensOut"])
                u.cacheReadTokens = ClineOutput.int(info["cacheReads"])
                u.cacheWriteTokens = ClineOutput.int(info["cacheWrites"])
                u.cost = ClineOutput.double(info["cost"])
                add(.modelResponse(agent: Self.agent, usage: u, durationMs: nil))
            }
        case ("say", "text"): if !text.isEmpty { add(.message(agent: Self.agent, role: "assistant", text: text)) }
        case ("say", "reasoning"): add(.message(agent: Self.agent, role: "reasoning", text: v["reasoning"]?.stringValue ?? text))
        case ("say", "task"): add(.message(agent: Self.agent, role: "task", text: text))
        case ("say", "completion_result"), ("ask", "completion_result"):
            if !text.isEmpty { add(.message(agent: Self.agent, role: "result", text: text)) }
        case ("ask", "followup"):
            add(.message(agent: Self.agent, role: "question", text: (try? JSONValue.parse(text))?["question"]?.stringValue ?? text))
        case ("say", "tool"), ("ask", "tool"):
            let t = try? JSONValue.parse(text)
            let tool = t?["tool"]?.stringValue ?? "?"
            add(.toolCall(agent: Self.agent, tool: tool, id: v["ts"].map { String($0.intValue ?? 0) },
                          input: Self.path(t) ?? Self.inputText(t)))
            if let path = Self.path(t), Self.editTools.contains(tool.lowercased()) {
                let op = tool == "newFileCreated" ? "create" : tool == "fileDeleted" ? "delete" : "edit"
                add(.fileWrite(agent: Self.agent, path: path, operation: op, bytes: Self.contentBytes(t) ?? size(of: path)))
            }
        case ("say", "command"), ("ask", "command"):
            add(.command(agent: Self.agent, command: text, exitCode: Self.exitCode(in: text), output: nil))
        case ("say", "command_output"), ("ask", "command_output"):
            if !text.isEmpty {
                add(.toolResult(agent: Self.agent, tool: "execute_command", id: nil, error: nil, output: text, durationMs: nil))
            }
        case ("say", "error"), ("ask", "mistake_limit_reached"):
            add(.error(source: Self.agent, message: text))
        case ("ask", "api_req_failed"):
            add(.error(source: Self.agent, message: "API request failed: " + text))
        case ("say", "error_retry"), ("say", "api_req_retried"):
            add(.error(source: Self.agent, message: "retrying: " + text, recoverable: true))
        default: break
        }
    }

    // MARK: helpers

    /// A tool input as text: its path, command or query, else its JSON.
    static func inputText(_ input: JSONValue?) -> String? {
        guard let input, !input.isNull else { return nil }
        let summary = ClineOutput.toolSummary(input).trimmingCharacters(in: .whitespaces)
        return summary.isEmpty ? nil : summary
    }

    static func text(_ v: JSONValue?) -> String? {
        guard let v, !v.isNull else { return nil }
        return v.stringValue ?? v.jsonString
    }

    static func path(_ input: JSONValue?) -> String? {
        for key in ["path", "file_path", "filePath", "target_file"] {
            if let s = input?[key]?.stringValue, !s.isEmpty { return s }
        }
        return nil
    }

    /// The bytes of the content a tool was given to write, when its input has it.
    static func contentBytes(_ input: JSONValue?) -> Int? {
        for key in ["content", "file_text", "text"] {
            if let s = input?[key]?.stringValue { return s.utf8.count }
        }
        return nil
    }

    /// "exit code 2", "Exit code: 2", "exited with code 2".
    static func exitCode(in text: String) -> Int? {
        guard let r = text.range(of: #"(?i)exit(ed with)? code:?\s*(-?\d{1,4})"#, options: .regularExpression) else { return nil }
        let digits = text[r].reversed().prefix { $0.isNumber || $0 == "-" }
        return Int(String(digits.reversed()))
    }

    /// The size of a file the agent wrote, for a relative path without `..`
    /// below the repository (a path the agent names is never followed elsewhere).
    func size(of path: String) -> Int? {
        guard let repoDir else { return nil }
        var rel = path
        if rel.hasPrefix(repoDir + "/") { rel = String(rel.dropFirst(repoDir.count + 1)) }
        guard !rel.hasPrefix("/"), !rel.split(separator: "/").contains("..") else { return nil }
        var st = stat()
        guard lstat(repoDir + "/" + rel, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int(st.st_size)
    }
}
