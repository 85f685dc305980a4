import RunnerCore
import Sandbox

/// `doctor`'s lines for the agent CLIs besides Cline (aider, mini-swe-agent),
/// from what `agent-runner-job --probe` found: where each is, its version,
/// whether a job can read the Python its virtualenv was made from, and
/// whether it has a provider route to call.
enum DoctorAgents {
    /// The lines, as (state, text) pairs.
    static func lines(_ agents: [ToolProbeReport.ProbedAgent], settings: ChildSettings) -> [(String, String)] {
        var out: [(String, String)] = []
        for agent in agents {
            let name = agent.name.rawValue
            let variable = agent.name == .aider ? "AIDER_CMD" : "MINI_SWE_AGENT_CMD"
            guard let path = agent.path else {
                out.append(("warn", "\(name): '\(agent.command)' not found (\(variable)); jobs fall back to the next generator"))
                continue
            }
            out.append(("ok", "\(name): \(path)" + (agent.version.map { " (\($0))" } ?? "")))
            if let home = agent.interpreterHome, !readable(home, settings: settings) {
                out.append(("fail", "\(name): its virtualenv's Python (\(home)) is outside what a job may read: "
                    + "add it to SANDBOX_READ_PATHS, or make the virtualenv from /usr/bin/python3"))
            }
            if settings.clineProvider == nil {
                out.append(("warn", "\(name): CLINE_PROVIDER is not set: the agent has no model to call and is skipped"))
            } else if settings.clineProvider?.kind == .gemini {
                out.append(("warn", "\(name): CLINE_PROVIDER=gemini is not supported for \(name); it is skipped"))
            }
        }
        return out
    }

    /// Whether `path` is below a folder every job may read (the system paths or SANDBOX_READ_PATHS).
    static func readable(_ path: String, settings: ChildSettings) -> Bool {
        (Confinement.systemPaths + settings.sandboxReadPaths).contains { root in
            path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/")
        }
    }
}
