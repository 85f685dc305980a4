import Foundation
import RunnerCore

/// Runs mini-swe-agent (`MINI_SWE_AGENT_CMD`, its `mini` CLI) in the job's
/// repo/: `-y --exit-immediately` (no confirmation, no prompt at the end),
/// its own `mini.yaml` merged with the runner's settings (model on the
/// provider route with the placeholder key, `MINI_SWE_AGENT_STEP_LIMIT`, no
/// cost limit, commands run in repo/), `MSWEA_CONFIGURED` (no first-run
/// setup), LiteLLM's bundled price map. Every action is a shell command it
/// runs through `/bin/sh`, inside the agent's sandbox. Its trajectory file,
/// in home/, gives the log its steps and `metadata.agent` its usage.
public struct MiniSWEAgentGenerator: AgentGenerator {
    public let context: AgentContext
    public init(_ context: AgentContext) { self.context = context }

    public var command: String { settings.agents.miniSWEAgentCommand }
    /// Its global config folder (MSWEA_GLOBAL_CONFIG_DIR), in home/.
    var configDir: String { layout.home + "/.config/mini-swe-agent" }
    /// The runner's settings, merged over the packaged `mini.yaml` (JSON is YAML).
    var configFile: String { configDir + "/agent-runner.yaml" }
    /// The trajectory it writes after every step.
    public var trajectoryFile: String { layout.home + "/mini-swe-agent.traj.json" }

    /// The model route, or why mini-swe-agent cannot run.
    var route: Result<LiteLLMRoute, LiteLLMRoute.Unavailable> {
        LiteLLMRoute.make(agent: "mini-swe-agent", provider: settings.clineProvider,
                          model: settings.agents.miniSWEAgentModel ?? settings.clineModel,
                          modelVariable: "MINI_SWE_AGENT_MODEL", route: context.providerBaseURL)
    }

    /// Why mini-swe-agent cannot run here, or nil when it can.
    public func unavailableReason() -> String? {
        LiteLLMRoute.unavailableReason(command: command, variable: "MINI_SWE_AGENT_CMD", route: route)
    }

    /// The task handed to the agent.
    public var prompt: String {
        "Read the build instructions in \(layout.instructions) and the architecture in \(layout.spec). Write the "
            + "complete codebase into the current directory, \(layout.repo), including a README.md at its root."
    }

    /// The argv: no key (the placeholder is in the environment).
    var arguments: [String] {
        ["-y", "--exit-immediately", "-c", "mini.yaml", "-c", configFile, "-o", trajectoryFile, "-t", prompt]
    }

    /// The runner's part of the configuration.
    func config(_ route: LiteLLMRoute) -> JSONValue {
        var kwargs: [String: JSONValue] = ["drop_params": true]
        if route.isOpenAI { kwargs["api_base"] = .string(route.apiBase) }
        return ["agent": ["step_limit": .int(Int64(settings.agents.miniSWEAgentStepLimit)), "cost_limit": 0,
                          "mode": "yolo", "confirm_exit": false],
                "model": ["model_name": .string(route.model), "cost_tracking": "ignore_errors",
                          "model_kwargs": .object(kwargs)],
                "environment": ["cwd": .string(layout.repo),
                                "timeout": .int(Int64(max(10, min(300, settings.clineTimeoutSeconds / 4))))]]
    }

    /// The environment: the LiteLLM agent's, and mini-swe-agent's own switches.
    func environment(_ route: LiteLLMRoute) -> [String: String] {
        var env = route.agentEnvironment(layout, extra: context.extraEnvironment)
        env.merge(["MSWEA_CONFIGURED": "true", "MSWEA_SILENT_STARTUP": "1", "MSWEA_GLOBAL_CONFIG_DIR": configDir,
                   "MSWEA_COST_TRACKING": "ignore_errors"]) { $1 }
        return env
    }

    /// Runs the agent to completion; returns the usage from its trajectory.
    /// Throws `generation_failed` on a non-zero exit, a timeout, a run that
    /// did not submit (its step limit, repeated format errors), or no
    /// README.md, and the sandbox's limit failures.
    public func run() throws -> AgentUsage? {
        guard let exe = AgentInstall.resolve(settings.agents.miniSWEAgentCommand) else {
            throw JobFailure(.generationFailed, "mini-swe-agent: '\(settings.agents.miniSWEAgentCommand)' not found")
        }
        let route = try self.route.mapError { JobFailure(.generationFailed, "mini-swe-agent: " + $0.reason) }.get()
        try FileManager.default.createDirectory(atPath: configDir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try Data((config(route).jsonString + "\n").utf8).write(to: URL(fileURLWithPath: configFile))
        log("mini-swe-agent: model \(route.model), base URL \(route.apiBase), placeholder key, "
            + "step limit \(settings.agents.miniSWEAgentStepLimit), trajectory \(trajectoryFile)")
        var lastStderr: String?
        let run = try AgentCLIRun.run(executable: exe, arguments: arguments, environment: environment(route),
                                      cwd: layout.repo, timeoutSeconds: settings.clineTimeoutSeconds) { line, isErr in
            // stdout echoes every message and command output: the trajectory gives the log its steps.
            guard isErr else { return }
            let text = line.trimmingCharacters(in: .whitespaces)
            guard !text.isEmpty, !text.hasPrefix("Warning: Input is not a terminal") else { return }
            lastStderr = LogBounds.clip(text, bytes: 512)
            log("mini-swe-agent: " + text)
        }
        let trajectory = MiniTrajectory.read(trajectoryFile)
        for line in trajectory.lines { log(line) }
        var usage = trajectory.usage
        usage.provider = settings.clineProvider?.kind.rawValue
        usage.model = route.model
        usage.durationMs = run.durationMs
        log(run.summary("mini-swe-agent"))
        log(AgentSummary.line("mini-swe-agent", usage))
        let lastError = lastStderr ?? trajectory.problem
        try run.check(agent: "mini-swe-agent", lastError: lastError, settings: settings)
        guard let status = usage.finishReason else {
            throw JobFailure(.generationFailed, "mini-swe-agent: no trajectory" + (trajectory.problem.map { ": " + $0 } ?? ""))
        }
        guard status == "Submitted" else {
            let limit = status == "LimitsExceeded" ? " (MINI_SWE_AGENT_STEP_LIMIT=\(settings.agents.miniSWEAgentStepLimit))" : ""
            throw JobFailure(.generationFailed, "mini-swe-agent: run ended \(status)\(limit) without submitting"
                + (lastError.map { ": " + $0 } ?? ""))
        }
        try AgentCLIRun.requireTree(agent: "mini-swe-agent", repo: layout.repo, lastError: lastError)
        return usage
    }
}
