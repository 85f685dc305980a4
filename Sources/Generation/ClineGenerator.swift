#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// Runs the Cline CLI (or any agent CLI with a compatible template) in the
/// job's repo/ directory: its own session, a per-job HOME and TMPDIR, no
/// secrets in its environment, a timeout that stops its whole process group.
public struct ClineGenerator {
    public let settings: ChildSettings
    public let workspace: String
    public let log: (String) -> Void

    public init(settings: ChildSettings, workspace: String, log: @escaping (String) -> Void) {
        self.settings = settings
        self.workspace = workspace
        self.log = log
    }

    var repoDir: String { workspace + "/repo" }
    var instructions: String { workspace + "/input/instructions.md" }
    var specPath: String { workspace + "/input/spec.json" }

    /// The prompt handed to the agent.
    public var prompt: String {
        "Read the build instructions in \(instructions) and the architecture in \(specPath) "
            + "(the diagram as drawn is in \(workspace)/input/architecture_spec.json). Write the complete codebase "
            + "into the current directory, \(repoDir), including a README.md at its root. Do not ask questions."
    }

    /// The argv from the CLINE_ARGS template: split on whitespace (quotes
    /// group words), then `{prompt}`, `{repo}`, `{instructions}`, `{spec}`
    /// and `{timeout}` are substituted inside each word.
    public func arguments() -> [String] {
        Self.split(settings.clineArgs).map { word in
            word.replacingOccurrences(of: "{prompt}", with: prompt)
                .replacingOccurrences(of: "{repo}", with: repoDir)
                .replacingOccurrences(of: "{instructions}", with: instructions)
                .replacingOccurrences(of: "{spec}", with: specPath)
                .replacingOccurrences(of: "{timeout}", with: String(settings.clineTimeoutSeconds))
        }
    }

    /// Whitespace split with single and double quotes grouping words.
    static func split(_ s: String) -> [String] {
        var words: [String] = [], current = "", quote: Character?, inWord = false
        for ch in s {
            if let q = quote {
                if ch == q { quote = nil } else { current.append(ch) }
            } else if ch == "\"" || ch == "'" {
                quote = ch; inWord = true
            } else if ch.isWhitespace {
                if inWord { words.append(current); current = ""; inWord = false }
            } else {
                current.append(ch); inWord = true
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// Why Cline cannot run here, or nil when it can.
    public func unavailableReason() -> String? {
        if !settings.clineEnabled { return "CLINE_ENABLED=false" }
        if Self.resolve(settings.clineCommand) == nil { return "'\(settings.clineCommand)' not found or not executable" }
        return nil
    }

    /// Runs the agent to completion. Throws `generation_failed` on a non-zero
    /// exit, a timeout, or a run that left no README.md.
    public func run() throws {
        guard let exe = Self.resolve(settings.clineCommand) else {
            throw JobFailure(.generationFailed, "cline: '\(settings.clineCommand)' not found")
        }
        let env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workspace + "/home",
                   "TMPDIR": workspace + "/tmp", "LANG": "C.UTF-8", "CI": "1", "NO_COLOR": "1"]
        let process = try AgentProcess(executable: exe, arguments: arguments(), environment: env, cwd: repoDir)
        let status = process.run(timeoutSeconds: settings.clineTimeoutSeconds, onLine: { line, isErr in
            log(isErr ? "cline stderr: \(line)" : Self.readable(line))
        })
        switch status {
        case .timedOut:
            throw JobFailure(.generationFailed, "cline: timed out after CLINE_TIMEOUT_SECONDS=\(settings.clineTimeoutSeconds)")
        case .exited(0): break
        case .exited(let code): throw JobFailure(.generationFailed, "cline: exited with code \(code)")
        case .signaled(let sig): throw JobFailure(.generationFailed, "cline: killed by signal \(sig)")
        }
        var st = stat()
        guard lstat(repoDir + "/README.md", &st) == 0 else {
            throw JobFailure(.generationFailed, "cline: finished without writing README.md")
        }
    }

    /// One line of Cline's `--json` NDJSON as a readable log line; other text as is.
    public static func readable(_ line: String) -> String {
        guard line.hasPrefix("{"), let v = try? JSONValue.parse(line) else { return "cline: " + line }
        let text = v["text"]?.stringValue ?? v["message"]?.stringValue ?? ""
        switch (v["type"]?.stringValue, v["say"]?.stringValue ?? v["ask"]?.stringValue) {
        case ("say", "completion_result"?): return "cline: completed: " + text
        case ("say", let kind?): return kind == "text" ? "cline: " + text : "cline [\(kind)]: " + text
        case ("ask", let kind): return "cline asks [\(kind ?? "?")]: " + text
        case ("error", _): return "cline error: " + (text.isEmpty ? v.jsonString : text)
        default: return "cline: " + v.jsonString
        }
    }

    /// The absolute path of `command` (as given, or found on PATH), if executable.
    public static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        for dir in ["/usr/local/bin", "/usr/bin", "/bin"] where access("\(dir)/\(command)", X_OK) == 0 {
            return "\(dir)/\(command)"
        }
        return nil
    }
}
