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
public struct ClineGenerator: AgentGenerator {
    public let context: AgentContext
    public init(_ context: AgentContext) { self.context = context }

    /// The provider route as the agent reaches it (see `ClineConfig.baseURL`).
    public var providerBaseURL: String? { context.providerBaseURL }
    /// CLINE_CMD.
    public var command: String { settings.clineCommand }
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
        env.merge(context.extraEnvironment) { old, _ in old }
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
        var output = ClineOutput(repoDir: repoDir)
        let run = try AgentCLIRun.run(executable: exe, arguments: arguments(), environment: environment, cwd: repoDir,
                                      timeoutSeconds: settings.clineTimeoutSeconds) { line, isErr in
            if let readable = output.readable(line, isErr: isErr) { log(readable) }
            for e in output.trajectory.take() { context.event(e) }
        }
        var usage = output.usage
        if usage.model == nil, output.format != nil { usage.model = settings.clineModel }
        log(run.summary("cline"))
        if !usage.isEmpty { log(Self.summary(usage)) }
        try run.check(agent: "cline", lastError: output.errors.last, settings: settings)
        let why = output.errors.last.map { ": " + $0 } ?? ""
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
        AgentSummary.line("cline", u, iterations: u.format == "cline-2" ? "API requests" : "iterations")
    }

    /// The memory-error marker `line` contains (case-insensitive), if any.
    static func memoryErrorMarker(in line: String) -> String? { AgentLimits.memoryErrorMarker(in: line) }

    /// The failure to report when the sandbox's limits stopped Cline (see `AgentLimits.failure`).
    static func limitFailure(_ status: AgentProcess.Status, cpuSeconds: Double, memoryError: String?,
                             settings: ChildSettings) -> JobFailure? {
        AgentLimits.failure(agent: "cline", status, cpuSeconds: cpuSeconds, memoryError: memoryError, settings: settings)
    }

    /// The absolute path of `command` (as given, or found on PATH), if executable.
    public static func resolve(_ command: String) -> String? { AgentInstall.resolve(command) }
}
