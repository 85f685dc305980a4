import Foundation
import ChildGeneration
import ChildPublishing
import RunnerCore

/// `--probe` (see ToolProbeRequest): reads the request on stdin, prints the
/// report as one JSON line. Returns the exit status (2 for an unreadable request).
enum ToolProbe {
    static func run() -> Int32 {
        let input = FileHandle.standardInput.readDataToEndOfFile()
        guard let request = try? JSONDecoder().decode(ToolProbeRequest.self, from: input) else {
            FileHandle.standardError.write(Data("agent-runner-job --probe: unreadable request on stdin\n".utf8))
            return 2
        }
        var problem: String?
        var checked = false
        if request.online, let route = request.geminiRoute {
            problem = GeminiGenerator(settings: request.settings, route: route, log: { _ in }).checkModel()
                .map { Redactor(secrets: [route.token]).redact($0) }
            checked = true
        }
        var report = ToolProbeReport(libgit2: GitInfo.description,
                                     clinePath: request.clineCommand.flatMap(ClineGenerator.resolve),
                                     geminiProblem: problem,
                                     geminiChecked: checked)
        report.agents = agents(request.settings)
        guard let data = try? JSONEncoder().encode(report) else { return 1 }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
        return 0
    }

    /// aider and mini-swe-agent when in GENERATORS: where, which version, on which Python.
    static func agents(_ s: ChildSettings) -> [ToolProbeReport.ProbedAgent] {
        let packages: [GeneratorName: String] = [.aider: "aider-chat", .miniSWEAgent: "mini-swe-agent"]
        return s.generators.compactMap { name in
            guard let package = packages[name], let command = s.agents.command(for: name, cline: s.clineCommand) else { return nil }
            return .init(name: name, command: command, path: AgentInstall.resolve(command),
                         version: AgentInstall.packageVersion(command, package: package).map { package + " " + $0 },
                         interpreterHome: AgentInstall.interpreterHome(command))
        }
    }
}
