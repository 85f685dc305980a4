#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// mini-swe-agent's trajectory file (`-o`, format `mini-swe-agent-1.1`) as
/// log lines and usage: each step's text and commands, each command's exit
/// code, how the run ended, and the tokens summed over the model's answers.
/// The file is the agent's output: read up to `maxBytes`, every string cut.
struct MiniTrajectory {
    var lines: [String] = []
    var usage: AgentUsage = {
        var u = AgentUsage()
        u.format = "mini-swe-agent"
        return u
    }()
    /// Why the file gave nothing, if it did not.
    var problem: String?

    /// The most of the file read.
    static let maxBytes = 32 << 20
    /// The longest text or command logged, in bytes.
    static let maxTextBytes = 1024

    /// Reads and parses the trajectory at `path` (a missing, oversized or
    /// malformed file gives `problem`, never a throw).
    static func read(_ path: String) -> MiniTrajectory {
        var t = MiniTrajectory()
        // The agent wrote it: no link followed, no FIFO waited on, a regular
        // file only, and never more than `maxBytes` read whatever it claims.
        var st = stat()
        guard let fd = try? retryingEINTR("open", { open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) }) else {
            t.problem = "it wrote no trajectory"
            return t
        }
        defer { close(fd) }
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            t.problem = "it wrote no trajectory"
            return t
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        let data = Int(st.st_size) > maxBytes ? nil : (try? handle.read(upToCount: maxBytes + 1)) ?? Data()
        guard let data, data.count <= maxBytes else {
            t.problem = "its trajectory is over \(maxBytes) bytes"
            return t
        }
        guard let json = try? JSONValue.parse(data) else {
            t.problem = "its trajectory is not JSON"
            return t
        }
        t.parse(json)
        return t
    }

    mutating func parse(_ json: JSONValue) {
        var step = 0
        for message in json["messages"]?.arrayValue ?? [] {
            let extra = message["extra"]
            switch message["role"]?.stringValue {
            case "assistant":
                step += 1
                if let text = Self.text(message["content"]), !text.isEmpty {
                    lines.append("mini-swe-agent step \(step): " + Self.clip(text))
                }
                for action in extra?["actions"]?.arrayValue ?? [] {
                    if let command = action["command"]?.stringValue { lines.append("mini-swe-agent step \(step): $ " + Self.clip(command)) }
                }
                let u = extra?["response"]?["usage"]
                add(&usage.inputTokens, u?["prompt_tokens"])
                add(&usage.outputTokens, u?["completion_tokens"])
                add(&usage.cacheReadTokens, u?["prompt_tokens_details"]?["cached_tokens"])
            case "tool", "user" where extra?["returncode"] != nil:
                guard let code = extra?["returncode"]?.intValue else { continue }
                let info = extra?["exception_info"]?.stringValue ?? ""
                // A failed command's first line of output says why (e.g. the sandbox's "Permission denied").
                let said = code == 0 ? nil : extra?["raw_output"]?.stringValue?.split(separator: "\n").first
                lines.append("mini-swe-agent step \(step): exit \(code)" + (info.isEmpty ? "" : " (" + Self.clip(info) + ")")
                    + (said.map { ": " + LogBounds.clip(String($0), bytes: 256) } ?? ""))
            case "exit":
                let status = extra?["exit_status"]?.stringValue ?? "unknown"
                lines.append("mini-swe-agent: finished: " + Self.clip(status))
            default: continue
            }
        }
        let info = json["info"]
        if let status = info?["exit_status"]?.stringValue { usage.finishReason = status }
        if let calls = info?["model_stats"]?["api_calls"]?.intValue { usage.iterations = Int(clamping: calls) }
        if let cost = info?["model_stats"]?["instance_cost"], let c = Self.number(cost), c > 0 { usage.cost = c }
    }

    /// Adds a token count, ignoring anything that is not a count.
    func add(_ total: inout Int?, _ value: JSONValue?) {
        guard let n = value?.intValue, n >= 0, n < 1 << 40 else { return }
        total = (total ?? 0) + Int(n)
    }

    static func number(_ v: JSONValue) -> Double? {
        switch v {
        case .int(let i): Double(i)
        case .double(let d) where d.isFinite: d
        default: nil
        }
    }

    /// A message's text: a string, or the text parts of a content list.
    static func text(_ content: JSONValue?) -> String? {
        if let s = content?.stringValue { return s.trimmingCharacters(in: .whitespacesAndNewlines) }
        let parts = content?.arrayValue?.compactMap { $0["text"]?.stringValue } ?? []
        return parts.isEmpty ? nil : parts.joined(separator: " ").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One line, cut to `maxTextBytes`.
    static func clip(_ s: String) -> String {
        LogBounds.clip(s.replacingOccurrences(of: "\n", with: " ⏎ "), bytes: maxTextBytes)
    }
}
