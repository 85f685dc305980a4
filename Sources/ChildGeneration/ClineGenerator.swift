#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// Runs the Cline CLI (or any agent CLI with a compatible template) in the
/// job's repo/ directory: its own session, a per-job HOME and TMPDIR, no
/// secrets in its environment, a timeout that stops its whole process group.
/// With CLINE_PROVIDER set, the per-job Cline configuration (provider, model,
/// the proxy's provider route, a placeholder key) is written into that HOME
/// first: see `ClineConfig`.
public struct ClineGenerator {
    public let settings: ChildSettings
    public let workspace: String
    /// The provider route as the agent reaches it (see `ClineConfig.baseURL`).
    public let providerBaseURL: String?
    /// Added to the agent's environment (e.g. HTTPS_PROXY); never a secret.
    public let extraEnvironment: [String: String]
    public let log: (String) -> Void

    public init(settings: ChildSettings, workspace: String, providerBaseURL: String? = nil,
                extraEnvironment: [String: String] = [:], log: @escaping (String) -> Void) {
        self.settings = settings
        self.workspace = workspace
        self.providerBaseURL = providerBaseURL
        self.extraEnvironment = extraEnvironment
        self.log = log
    }

    var layout: WorkspaceLayout { WorkspaceLayout(workspace) }
    var repoDir: String { layout.repo }
    var home: String { layout.home }
    /// `$CLINE_DIR`, where both Cline generations keep their data.
    public var clineDir: String { home + "/.cline" }

    /// The configuration to write, when a provider and its route are known.
    public var config: ClineConfig? {
        guard let provider = settings.clineProvider, let url = providerBaseURL else { return nil }
        return ClineConfig(provider: provider, model: settings.clineModel, baseURL: url)
    }

    /// The agent's whole environment: nothing inherited, no secret.
    public var environment: [String: String] {
        var env = layout.environment
        env.merge(["CI": "1", "NO_COLOR": "1", "CLINE_DIR": clineDir, "CLINE_NO_AUTO_UPDATE": "1"]) { $1 }
        if config != nil, let url = providerBaseURL, let host = URLParts(url)?.host {
            // The provider route is called directly, never through HTTP(S)_PROXY.
            env["NO_PROXY"] = host
            env["no_proxy"] = host
        }
        env.merge(extraEnvironment) { old, _ in old }
        return env
    }

    /// The prompt handed to the agent.
    public var prompt: String {
        "Read the build instructions in \(layout.instructions) and the architecture in \(layout.spec) "
            + "(the diagram as drawn is in \(layout.diagram)). Write the complete codebase "
            + "into the current directory, \(repoDir), including a README.md at its root. Do not ask questions."
    }

    /// `{timeout}`: the CLI's own run timeout, CLINE_TIMEOUT_SECONDS less a
    /// head start of a tenth (at most 30 s), so the CLI ends an overlong run
    /// itself and still reports its usage before the runner stops it.
    public var cliTimeoutSeconds: Int {
        let t = settings.clineTimeoutSeconds
        return max(1, t - min(30, t / 10))
    }

    /// The argv from the CLINE_ARGS template: split on whitespace (quotes
    /// group words), then `{prompt}`, `{repo}`, `{instructions}`, `{spec}`
    /// and `{timeout}` (`cliTimeoutSeconds`) are substituted inside each word.
    public func arguments() -> [String] {
        Self.split(settings.clineArgs).map { word in
            word.replacingOccurrences(of: "{prompt}", with: prompt)
                .replacingOccurrences(of: "{repo}", with: repoDir)
                .replacingOccurrences(of: "{instructions}", with: layout.instructions)
                .replacingOccurrences(of: "{spec}", with: layout.spec)
                .replacingOccurrences(of: "{timeout}", with: String(cliTimeoutSeconds))
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
        if let provider = settings.clineProvider, providerBaseURL == nil {
            return "CLINE_PROVIDER=\(provider.kind.rawValue) needs the egress proxy's provider route, and this job has none "
                + "(the agent never gets CLINE_API_KEY itself)"
        }
        return nil
    }

    /// Runs the agent to completion; returns the model and usage it reported.
    /// Throws `generation_failed` on a non-zero exit, a timeout, an aborted or
    /// unfinished run, or a run that left no README.md (the chain then tries
    /// the next generator), and `resource_limit` or `sandbox_violation` when
    /// the sandbox stopped the agent (the job fails: see `limitFailure`).
    public func run() throws -> AgentUsage? {
        guard let exe = Self.resolve(settings.clineCommand) else {
            throw JobFailure(.generationFailed, "cline: '\(settings.clineCommand)' not found")
        }
        if let config {
            try config.write(clineDir: clineDir)
            log("cline: configured provider \(config.providerID) (2.x: \(config.providerIDv2)), model "
                + "\(config.model ?? "(CLI default)"), base URL \(config.baseURL), placeholder key, in \(clineDir)/data")
        }
        let process = try AgentProcess(executable: exe, arguments: arguments(), environment: environment, cwd: repoDir)
        var memoryError: String?
        var output = ClineOutput()
        let ended = process.run(timeoutSeconds: settings.clineTimeoutSeconds, onLine: { line, isErr in
            if isErr, memoryError == nil { memoryError = Self.memoryErrorMarker(in: line) }
            if let readable = output.readable(line, isErr: isErr) { log(readable) }
        })
        var usage = output.usage
        if usage.model == nil, output.format != nil { usage.model = settings.clineModel }
        if !usage.isEmpty { log(Self.summary(usage)) }
        if let failure = Self.limitFailure(ended.status, cpuSeconds: ended.cpuSeconds, memoryError: memoryError,
                                           settings: settings) {
            throw failure
        }
        let why = output.errors.last.map { ": " + $0 } ?? ""
        switch ended.status {
        case .timedOut:
            throw JobFailure(.generationFailed, "cline: timed out after CLINE_TIMEOUT_SECONDS=\(settings.clineTimeoutSeconds)")
        case .exited(0): break
        case .exited(let code): throw JobFailure(.generationFailed, "cline: exited with code \(code)" + why)
        case .signaled(let sig): throw JobFailure(.generationFailed, "cline: killed by signal \(sig)" + why)
        }
        if let aborted = output.aborted {
            throw JobFailure(.generationFailed, "cline: run aborted: " + aborted)
        }
        if let reason = usage.finishReason, reason != "completed" {
            throw JobFailure(.generationFailed, "cline: run ended unfinished (\(reason))" + why)
        }
        var st = stat()
        guard lstat(repoDir + "/README.md", &st) == 0 else {
            throw JobFailure(.generationFailed, "cline: finished without writing README.md")
        }
        return usage.isEmpty ? nil : usage
    }

    /// "cline usage: …" for the log.
    static func summary(_ u: AgentUsage) -> String {
        var parts = ["model \(u.model ?? "?")" + (u.provider.map { " (\($0))" } ?? "")]
        parts.append("\(u.inputTokens ?? 0) input + \(u.outputTokens ?? 0) output tokens")
        if let r = u.cacheReadTokens, r > 0 { parts.append("\(r) cache read") }
        if let w = u.cacheWriteTokens, w > 0 { parts.append("\(w) cache write") }
        if let c = u.cost { parts.append(String(format: "$%.4f", c)) }
        if let i = u.iterations { parts.append("\(i) " + (u.format == "cline-2" ? "API requests" : "iterations")) }
        return "cline usage: " + parts.joined(separator: ", ")
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

    /// The absolute path of `command` (as given, or found on PATH), if executable.
    public static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        for dir in ["/usr/local/bin", "/usr/bin", "/bin"] where access("\(dir)/\(command)", X_OK) == 0 {
            return "\(dir)/\(command)"
        }
        return nil
    }
}
