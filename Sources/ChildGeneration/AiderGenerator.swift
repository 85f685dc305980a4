import Foundation
import RunnerCore

/// Runs aider (`AIDER_CMD`) in the job's repo/ as its users run it for one
/// task: `--message` with the prompt, the instructions and spec read-only in
/// the chat, the model on the provider route with the placeholder key
/// (`LiteLLMRoute`), and everything that would reach the internet off (update
/// check, analytics, model-price download: `--model-metadata-file` and a
/// seeded cache). No git of its own (the runner commits), no linter, no shell
/// commands; history files in home/. Its `.aider*` files are never pushed.
public struct AiderGenerator: AgentGenerator {
    public let context: AgentContext
    public init(_ context: AgentContext) { self.context = context }

    public var command: String { settings.agents.aiderCommand }
    /// aider's own folder in home/ (its caches, analytics state, model metadata).
    var aiderHome: String { layout.home + "/.aider" }
    var metadataFile: String { aiderHome + "/agent-runner-models.json" }

    /// The model route, or why aider cannot run.
    var route: Result<LiteLLMRoute, LiteLLMRoute.Unavailable> {
        LiteLLMRoute.make(agent: "aider", provider: settings.clineProvider,
                          model: settings.agents.aiderModel ?? settings.clineModel, modelVariable: "AIDER_MODEL",
                          route: context.providerBaseURL)
    }

    /// Why aider cannot run here, or nil when it can.
    public func unavailableReason() -> String? {
        LiteLLMRoute.unavailableReason(command: command, variable: "AIDER_CMD", route: route)
    }

    /// The argv (no key: the placeholder is in the environment).
    func arguments(_ route: LiteLLMRoute) -> [String] {
        var args = ["--model", route.model]
        if route.isOpenAI { args += ["--openai-api-base", route.apiBase] }
        args += ["--model-metadata-file", metadataFile,
                 "--no-check-update", "--no-show-release-notes", "--no-analytics", "--yes-always",
                 "--no-auto-lint", "--no-auto-test", "--no-git", "--no-gitignore", "--map-tokens", "0",
                 "--no-stream", "--no-pretty", "--no-fancy-input", "--no-detect-urls", "--no-suggest-shell-commands",
                 "--no-show-model-warnings", "--encoding", "utf-8",
                 "--chat-history-file", layout.home + "/.aider.chat.history.md",
                 "--input-history-file", layout.home + "/.aider.input.history",
                 "--read", layout.instructions, "--read", layout.spec,
                 "--message", prompt]
        return args
    }

    /// The task handed to aider.
    public var prompt: String {
        "Build the project described in the read-only files \(WorkspaceLayout.instructionsFile) and \(WorkspaceLayout.specFile): "
            + "write the complete codebase as new files in the current directory, including a README.md at its root. "
            + "Do not ask questions."
    }

    /// The model's metadata (context window, zero price), so aider neither
    /// warns about an unknown model nor downloads LiteLLM's price list.
    func metadata(_ route: LiteLLMRoute) -> JSONValue {
        let entry: JSONValue = ["max_input_tokens": 128_000, "max_tokens": 8192, "max_output_tokens": 8192,
                                "input_cost_per_token": 0, "output_cost_per_token": 0, "mode": "chat",
                                "litellm_provider": .string(route.isOpenAI ? "openai" : "anthropic")]
        return .object([route.model: entry])
    }

    /// Runs aider to completion; returns the usage it reported. Throws
    /// `generation_failed` on a non-zero exit, a timeout, or a run that
    /// wrote nothing or no README.md, and the sandbox's limit failures.
    public func run() throws -> AgentUsage? {
        guard let exe = AgentInstall.resolve(settings.agents.aiderCommand) else {
            throw JobFailure(.generationFailed, "aider: '\(settings.agents.aiderCommand)' not found")
        }
        let route = try self.route.mapError { JobFailure(.generationFailed, "aider: " + $0.reason) }.get()
        try FileManager.default.createDirectory(atPath: aiderHome + "/caches", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let meta = Data((metadata(route).jsonString + "\n").utf8)
        try meta.write(to: URL(fileURLWithPath: metadataFile))
        // A fresh price cache: aider downloads LiteLLM's list only when its cache is empty or stale.
        try meta.write(to: URL(fileURLWithPath: aiderHome + "/caches/model_prices_and_context_window.json"))
        log("aider: model \(route.model), base URL \(route.apiBase), placeholder key, home \(layout.home)")
        var output = AiderOutput()
        let run = try AgentCLIRun.run(executable: exe, arguments: arguments(route),
                                      environment: route.agentEnvironment(layout, extra: context.extraEnvironment),
                                      cwd: layout.repo, timeoutSeconds: settings.clineTimeoutSeconds) { line, isErr in
            if let readable = output.readable(line, isErr: isErr) { log(readable) }
        }
        var usage = output.usage
        usage.provider = settings.clineProvider?.kind.rawValue
        usage.model = route.model
        if output.skipped > 0 { log("aider: \(output.skipped) lines of the model's answer not logged") }
        usage.durationMs = run.durationMs
        log(run.summary("aider"))
        log(AgentSummary.line("aider", usage))
        try run.check(agent: "aider", lastError: output.lastError, settings: settings)
        let own = StopGate.whileGenerating { AgentCLIRun.removeOwnFiles(repo: layout.repo) }
        if !own.isEmpty { log("aider: removed its own files from the tree: " + own.joined(separator: ", ")) }
        try AgentCLIRun.requireTree(agent: "aider", repo: layout.repo, lastError: output.lastError)
        return usage
    }
}
