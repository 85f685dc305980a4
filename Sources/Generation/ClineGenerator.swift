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
    /// exit, a timeout, or a run that left no README.md (the chain then tries
    /// the next generator), and `resource_limit` or `sandbox_violation` when
    /// the sandbox stopped the agent (the job fails: see `limitFailure`).
    public func run() throws {
        guard let exe = Self.resolve(settings.clineCommand) else {
            throw JobFailure(.generationFailed, "cline: '\(settings.clineCommand)' not found")
        }
        let env = ["PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workspace + "/home",
                   "TMPDIR": workspace + "/tmp", "LANG": "C.UTF-8", "CI": "1", "NO_COLOR": "1"]
        let process = try AgentProcess(executable: exe, arguments: arguments(), environment: env, cwd: repoDir)
        var memoryError: String?
        let ended = process.run(timeoutSeconds: settings.clineTimeoutSeconds, onLine: { line, isErr in
            if isErr, memoryError == nil { memoryError = Self.memoryErrorMarker(in: line) }
            log(isErr ? "cline stderr: \(line)" : Self.readable(line))
        })
        if let failure = Self.limitFailure(ended.status, cpuSeconds: ended.cpuSeconds, memoryError: memoryError,
                                           settings: settings) {
            throw failure
        }
        switch ended.status {
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

    /// Markers of a failed allocation in an agent's stderr: Python's
    /// `MemoryError`, strerror(ENOMEM) "Cannot allocate memory", and "out of
    /// memory" (Node's "JavaScript heap out of memory", many C tools).
    static let memoryErrorMarkers = ["MemoryError", "Cannot allocate memory", "out of memory"]

    /// The memory-error marker `line` contains (case-insensitive), if any.
    static func memoryErrorMarker(in line: String) -> String? {
        let lower = line.lowercased()
        return memoryErrorMarkers.first { lower.contains($0.lowercased()) }
    }

    /// The failure to report when the sandbox's limits stopped the agent, or
    /// nil when it ended for another reason. These fail the job (no fallback
    /// to the next generator: it would run under the same limits).
    /// - SIGXCPU (or exit 128+SIGXCPU, a shell's report of a command it ran),
    ///   or SIGKILL after using at least JOB_CPU_SECONDS of CPU (the hard
    ///   limit, soft + `Confinement.cpuGraceSeconds`): the CPU limit.
    /// - SIGXFSZ (or exit 128+SIGXFSZ): RLIMIT_FSIZE, JOB_MAX_TOTAL_MB + 64 MB.
    /// - SIGSYS (or exit 128+SIGSYS): the seccomp filter killed it (another
    ///   architecture's call): `sandbox_violation`.
    /// - A failed run whose stderr showed a memory-error marker: a heuristic,
    ///   since RLIMIT_DATA makes allocations fail and the agent decides how to
    ///   die (an exception, an abort, an exit code); a run that succeeds
    ///   despite such a line is not a failure.
    static func limitFailure(_ status: AgentProcess.Status, cpuSeconds: Double, memoryError: String?,
                             settings: ChildSettings) -> JobFailure? {
        let cpu = "cline: CPU limit JOB_CPU_SECONDS=\(settings.cpuSeconds) exceeded"
        let fsize = "cline: file size limit exceeded: a file reached RLIMIT_FSIZE = JOB_MAX_TOTAL_MB+64 = \(settings.maxTotalMB + 64) MB"
        switch status {
        case .signaled(SIGXCPU): return JobFailure(.resourceLimit, cpu + " (SIGXCPU)")
        case .exited(128 + SIGXCPU): return JobFailure(.resourceLimit, cpu + " (exit status \(128 + SIGXCPU): a process killed by SIGXCPU)")
        case .signaled(SIGKILL) where cpuSeconds >= Double(settings.cpuSeconds):
            return JobFailure(.resourceLimit, cpu + " (SIGKILL at the hard limit after \(Int(cpuSeconds)) s of CPU)")
        case .signaled(SIGXFSZ): return JobFailure(.resourceLimit, fsize + " (SIGXFSZ)")
        case .exited(128 + SIGXFSZ): return JobFailure(.resourceLimit, fsize + " (exit status \(128 + SIGXFSZ): a process killed by SIGXFSZ)")
        case .signaled(SIGSYS), .exited(128 + SIGSYS):
            return JobFailure(.sandboxViolation, "cline: killed by SIGSYS: the seccomp filter refused a system call "
                + "(another architecture's, i386 int 0x80 or x32)" + (status == .signaled(SIGSYS) ? "" : " (exit status 159)"))
        case .exited(0), .timedOut: return nil
        case .exited, .signaled:
            guard let marker = memoryError else { return nil }
            return JobFailure(.resourceLimit, "cline: memory limit JOB_MEMORY_MB=\(settings.memoryMB) exceeded "
                + "(the agent failed with \"\(marker)\" on stderr)")
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
