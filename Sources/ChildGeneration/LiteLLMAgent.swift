#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// How an agent built on LiteLLM (aider, mini-swe-agent) reaches its model:
/// the egress proxy's provider route as API base, the placeholder key in the
/// variable LiteLLM reads for that provider, nothing that reaches the
/// internet. The proxy swaps the placeholder for `CLINE_API_KEY`.
struct LiteLLMRoute: Equatable {
    /// LiteLLM's model name: `openai/<id>` (OpenAI, OpenRouter and
    /// OpenAI-compatible providers, all on chat completions) or `anthropic/<id>`.
    var model: String
    /// The provider route, standing for the provider's base URL.
    var apiBase: String
    /// Whether LiteLLM speaks OpenAI's chat completions to it.
    var isOpenAI: Bool

    /// The route for `provider` and `model` over `route`, or why there is none.
    static func make(agent: String, provider: ClineProvider?, model: String?, modelVariable: String,
                     route: String?) -> Result<LiteLLMRoute, Unavailable> {
        guard let provider else {
            return .failure(Unavailable("CLINE_PROVIDER is not set: \(agent) reaches its model only through the "
                + "egress proxy's provider route"))
        }
        guard let route else {
            return .failure(Unavailable("CLINE_PROVIDER=\(provider.kind.rawValue) needs the egress proxy's provider route, "
                + "and this job has none (the agent never gets CLINE_API_KEY itself)"))
        }
        guard let model else { return .failure(Unavailable("no model: set CLINE_MODEL or \(modelVariable)")) }
        switch provider.kind {
        case .openai, .openrouter, .openaiCompatible:
            return .success(LiteLLMRoute(model: "openai/" + model, apiBase: route, isOpenAI: true))
        case .anthropic:
            return .success(LiteLLMRoute(model: "anthropic/" + model, apiBase: route, isOpenAI: false))
        case .gemini:
            return .failure(Unavailable("CLINE_PROVIDER=gemini: \(agent) runs on OpenAI-compatible and Anthropic providers only"))
        }
    }

    /// Why an agent cannot run here: its `command` (named by `variable`) is
    /// missing, or `route` is none; nil when it can.
    static func unavailableReason(command: String, variable: String,
                                  route: Result<LiteLLMRoute, Unavailable>) -> String? {
        if AgentInstall.resolve(command) == nil { return "'\(command)' not found or not executable (\(variable))" }
        if case .failure(let why) = route { return why.reason }
        return nil
    }

    /// Why an agent cannot run (the chain logs it and moves on).
    struct Unavailable: Error, Equatable {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The variables LiteLLM reads for this provider: the placeholder key and the base URL.
    var environment: [String: String] {
        isOpenAI
            ? ["OPENAI_API_KEY": ClineProvider.placeholderKey, "OPENAI_API_BASE": apiBase, "OPENAI_BASE_URL": apiBase]
            : ["ANTHROPIC_API_KEY": ClineProvider.placeholderKey, "ANTHROPIC_API_BASE": apiBase, "ANTHROPIC_BASE_URL": apiBase]
    }

    /// The whole environment of a Python agent in `layout`: nothing
    /// inherited, no secret; HOME, caches, config and data in the workspace's
    /// home/; no colour, no bytecode written, LiteLLM's bundled price map (no
    /// download), telemetry off; the provider route called directly, every
    /// other request through the job's proxy (`extra`: HTTPS_PROXY…).
    func agentEnvironment(_ layout: WorkspaceLayout, extra: [String: String]) -> [String: String] {
        var env = layout.environment
        env.merge(["CI": "1", "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "1000", "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTHONUNBUFFERED": "1", "XDG_CACHE_HOME": layout.home + "/.cache",
                   "XDG_DATA_HOME": layout.home + "/.local/share", "XDG_STATE_HOME": layout.home + "/.local/state",
                   "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION", "DO_NOT_TRACK": "1",
                   "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"]) { $1 }
        env.merge(environment) { $1 }
        if let host = URLParts(apiBase)?.host {
            env["NO_PROXY"] = host
            env["no_proxy"] = host
        }
        env.merge(extra) { old, _ in old }
        return env
    }
}

/// One run of an agent CLI and how it ended, classified the way Cline's is:
/// the sandbox's limits fail the job; a timeout, a non-zero exit or a signal
/// is `generation_failed` (the chain moves on).
public struct AgentCLIRun {
    var ended: AgentProcess.Ended
    var memoryError: String?
    /// Seconds from the spawn to the end, and to the first line of output (its start-up).
    var seconds: Double
    var firstOutputSeconds: Double?
    /// The largest resident set of any process the job child has reaped so
    /// far (getrusage(RUSAGE_CHILDREN)): the agent's peak, or an earlier agent's.
    var peakMemoryMB: Int
    /// Processes the agent left running when it exited, killed then (-1: its
    /// whole PID namespace was).
    var leftovers = 0

    /// Runs `executable` in `cwd` to its end, every output line to `onLine`.
    static func run(executable: String, arguments: [String], environment: [String: String], cwd: String,
                    timeoutSeconds: Int, onLine: (String, Bool) -> Void) throws -> AgentCLIRun {
        let start = ContinuousClock.now
        func since() -> Double {
            let d = (ContinuousClock.now - start).components
            return Double(d.seconds) + Double(d.attoseconds) / 1e18
        }
        let process = try AgentProcess(executable: executable, arguments: arguments, environment: environment, cwd: cwd)
        var memoryError: String?
        var first: Double?
        let ended = process.run(timeoutSeconds: timeoutSeconds, onLine: { line, isErr in
            if first == nil { first = since() }
            if isErr, memoryError == nil { memoryError = AgentLimits.memoryErrorMarker(in: line) }
            onLine(line, isErr)
        })
        // Nothing the agent started outlives it: the caller reads files the
        // agent wrote (its trajectory, the tree), which a process left
        // running could still grow or swap for a link.
        let leftovers = AgentReaper.killAll()
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return AgentCLIRun(ended: ended, memoryError: memoryError, seconds: since(), firstOutputSeconds: first,
                           peakMemoryMB: Int(usage.ru_maxrss / 1024), leftovers: leftovers)
    }

    /// "aider: ran 11.2 s (first output after 3.1 s), peak memory 180 MB" for the log.
    func summary(_ agent: String) -> String {
        "\(agent): ran " + String(format: "%.1f s", seconds)
            + (firstOutputSeconds.map { String(format: " (first output after %.1f s)", $0) } ?? "")
            + ", peak memory \(peakMemoryMB) MB"
            + (leftovers > 0 ? ", ended \(leftovers) process(es) it left running"
                : leftovers < 0 ? ", ended the processes it left running" : "")
    }

    /// The run's wall-clock milliseconds, for `metadata.agent.durationMs`.
    var durationMs: Int { Int((seconds * 1000).rounded()) }

    /// Throws the failure this end means for `agent`; `lastError` is the
    /// agent's last error message, appended to the reason.
    func check(agent: String, lastError: String?, settings: ChildSettings) throws {
        if let failure = AgentLimits.failure(agent: agent, ended.status, cpuSeconds: ended.cpuSeconds,
                                             memoryError: memoryError, settings: settings) {
            throw failure
        }
        let why = lastError.map { ": " + $0 } ?? ""
        switch ended.status {
        case .timedOut:
            throw JobFailure(.generationFailed, "\(agent): timed out after CLINE_TIMEOUT_SECONDS=\(settings.clineTimeoutSeconds)")
        case .exited(0): return
        case .exited(let code): throw JobFailure(.generationFailed, "\(agent): exited with code \(code)" + why)
        case .signaled(let sig): throw JobFailure(.generationFailed, "\(agent): killed by signal \(sig)" + why)
        }
    }

    /// A run that exited 0 must have left a tree: aider exits 0 when its
    /// API is unreachable, having written nothing.
    static func requireTree(agent: String, repo: String, lastError: String?) throws {
        let why = lastError.map { ": " + $0 } ?? ""
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: repo)) ?? []
        guard !entries.isEmpty else {
            throw JobFailure(.generationFailed, "\(agent): exited 0 without writing anything" + why)
        }
        var st = stat()
        guard lstat(repo + "/README.md", &st) == 0 else {
            throw JobFailure(.generationFailed, "\(agent): finished without writing README.md" + why)
        }
    }

    /// Removes the agent's own files from the top of `repo` (`prefixes`,
    /// e.g. aider's `.aider*`): they are never pushed. Returns their names.
    /// (A stop's checkpoint does the same for its tree, with the pipeline parked.)
    public static func removeOwnFiles(repo: String, prefixes: [String] = ownFilePrefixes) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: repo)) ?? []
        let own = entries.filter { name in prefixes.contains { name.hasPrefix($0) } }.sorted()
        for name in own { try? FileManager.default.removeItem(atPath: repo + "/" + name) }
        return own
    }

    /// The agents' own files at the top of the tree, never pushed (aider's `.aider*`).
    public static let ownFilePrefixes = [".aider"]
}

/// The one usage line an agent's run logs: "aider usage: model …, N input
/// + M output tokens, … cache read, $cost, N API requests".
enum AgentSummary {
    static func line(_ agent: String, _ u: AgentUsage, iterations label: String = "API requests") -> String {
        var parts = ["model \(u.model ?? "?")" + (u.provider.map { " (\($0))" } ?? "")]
        parts.append("\(u.inputTokens ?? 0) input + \(u.outputTokens ?? 0) output tokens")
        if let r = u.cacheReadTokens, r > 0 { parts.append("\(r) cache read") }
        if let w = u.cacheWriteTokens, w > 0 { parts.append("\(w) cache write") }
        if let c = u.cost { parts.append(String(format: "$%.4f", c)) }
        if let i = u.iterations { parts.append("\(i) \(label)") }
        return "\(agent) usage: " + parts.joined(separator: ", ")
    }
}
