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
        let report = ToolProbeReport(libgit2: GitInfo.description,
                                     clinePath: request.clineCommand.flatMap(ClineGenerator.resolve),
                                     geminiProblem: problem,
                                     geminiChecked: checked)
        guard let data = try? JSONEncoder().encode(report) else { return 1 }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
        return 0
    }
}
