import Foundation
import ChildGeneration
import RunnerCore

/// Tries the configured generators in order (GENERATORS); the first that
/// produces a tree wins, and the log says why each other one was skipped.
struct GeneratorChain {
    let ticket: JobTicket
    let spec: ArchitectureSpec
    let workspace: WorkspaceLayout
    var repoDir: String { workspace.repo }
    let log: (String) -> Void
    /// The job's event stream: each generator's steps and the agent's events.
    var event: (JobEvent) -> Void = { _ in }
    /// The provider route Cline calls (see `ClineConfig`): the egress proxy's,
    /// set by the pipeline (debug builds: else the ticket's `testProviderBaseURL`).
    var providerBaseURL: String? = nil

    /// The route Cline gets; nil: none (Cline is then skipped when a provider is configured).
    var route: String? {
        #if DEBUG
        providerBaseURL ?? ticket.testProviderBaseURL
        #else
        providerBaseURL
        #endif
    }

    /// The generator whose tree is in repo/, and what the agent reported.
    struct Outcome {
        var generator: GeneratorName
        var agent: AgentUsage?
    }

    /// Runs the chain.
    func run() throws -> Outcome {
        var reasons: [String] = []
        var retryable = false
        for name in ticket.settings.generators {
            do {
                switch name {
                case .scaffold:
                    let files = ScaffoldGenerator.files(for: spec).map { ($0.path, Array($0.content.utf8)) }
                    let summary = try StopGate.whileGenerating {
                        try TreeWriter(root: repoDir, limits: TreeLimits(ticket.settings)).write(files)
                    }
                    log("generator scaffold: wrote \(summary.files.count) files")
                    event(.generator(name.rawValue, step: "finished", files: summary.files.count))
                    return Outcome(generator: .scaffold)
                case .cline, .aider, .miniSWEAgent:
                    let agent = agent(name)
                    if let why = agent.unavailableReason() {
                        reasons.append("\(name.rawValue) skipped: \(why)")
                        log("generator \(name.rawValue) skipped: \(why)")
                        event(.generator(name.rawValue, step: "skipped", detail: why))
                        continue
                    }
                    log("generator \(name.rawValue): running \(agent.command)")
                    event(.generator(name.rawValue, step: "started", detail: agent.command))
                    let usage = try agent.run()
                    // Whatever the agent left must pass the tree rules before anything else.
                    let tree = try TreeScanner.scan(repoDir, limits: TreeLimits(ticket.settings))
                    log("generator \(name.rawValue): finished")
                    event(.generator(name.rawValue, step: "finished", files: tree.files.count))
                    return Outcome(generator: name, agent: usage)
                case .gemini:
                    // The key stays with the egress proxy: the ticket holds its route's token only.
                    guard let token = ticket.secrets.geminiRouteToken else {
                        let why = ticket.settings.network == .none
                            ? "JOB_NETWORK=none: the job has no route to the Gemini API"
                            : "GOOGLE_GEMINI_API_KEY is not set"
                        reasons.append("gemini skipped: " + why)
                        log("generator gemini skipped: " + why)
                        event(.generator(name.rawValue, step: "skipped", detail: why))
                        continue
                    }
                    let gemini = GeminiGenerator(settings: ticket.settings,
                                                 route: GeminiRoute(socketPath: workspace.egressSocket, token: token), log: log)
                    log("generator gemini: asking \(ticket.settings.geminiModel)")
                    event(.generator(name.rawValue, step: "started", detail: ticket.settings.geminiModel))
                    let files = try gemini.generate(
                        instructions: try String(contentsOfFile: workspace.instructions, encoding: .utf8),
                        spec: try String(contentsOfFile: workspace.spec, encoding: .utf8))
                    let summary = try StopGate.whileGenerating {
                        try TreeWriter(root: repoDir, limits: TreeLimits(ticket.settings))
                            .write(files.map { ($0.path, Array($0.content.utf8)) })
                    }
                    log("generator gemini: wrote \(summary.files.count) files")
                    event(.generator(name.rawValue, step: "finished", files: summary.files.count))
                    return Outcome(generator: .gemini)
                }
            } catch let f as JobFailure where f.code == .generationFailed {
                reasons.append(f.message)
                retryable = retryable || f.retryable
                log("generator \(name.rawValue) failed: \(f.message); trying the next one")
                event(.generator(name.rawValue, step: "failed", detail: f.message))
                // Nothing a failed agent started may write into the next generator's tree.
                StopGate.parkIfStopping()
                let leftovers = AgentReaper.killAll()
                if leftovers > 0 { log("ended \(leftovers) process(es) the failed agent left running") }
                try StopGate.whileGenerating { try clearRepo() }
            }
        }
        throw JobFailure(.generationFailed, "no generator produced a tree: " + reasons.joined(separator: "; "),
                         retryable: retryable)
    }

    /// The agent generator `name` stands for (Cline, aider, mini-swe-agent).
    func agent(_ name: GeneratorName) -> AgentGenerator {
        let context = AgentContext(settings: ticket.settings, workspace: workspace.root, providerBaseURL: route,
                                   extraEnvironment: AgentNetwork.environment, log: log, event: event)
        switch name {
        case .aider: return AiderGenerator(context)
        case .miniSWEAgent: return MiniSWEAgentGenerator(context)
        default: return ClineGenerator(context)
        }
    }

    /// Empties repo/ after a failed generator (links are removed, never followed).
    func clearRepo() throws {
        for entry in try FileManager.default.contentsOfDirectory(atPath: repoDir) {
            try FileManager.default.removeItem(atPath: repoDir + "/" + entry)
        }
    }
}
