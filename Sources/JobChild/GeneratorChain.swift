import Foundation
import Generation
import RunnerCore

/// Tries the configured generators in order (DESIGN §4); the first that
/// produces a tree wins, and the log says why each other one was skipped.
struct GeneratorChain {
    let ticket: JobTicket
    let spec: ArchitectureSpec
    let inputDir: String
    let repoDir: String
    let log: (String) -> Void

    /// Runs the chain; returns the name of the generator whose tree is in repo/.
    func run() throws -> String {
        var reasons: [String] = []
        for name in ticket.settings.generators {
            switch name {
            case "scaffold":
                let files = ScaffoldGenerator.files(for: spec).map { ($0.path, Array($0.content.utf8)) }
                let summary = try TreeWriter(root: repoDir, limits: TreeLimits(ticket.settings)).write(files)
                log("generator scaffold: wrote \(summary.files.count) files")
                return "scaffold"
            default:
                let reason = "generator \(name): not available in this build"
                log(reason)
                reasons.append(reason)
            }
        }
        throw JobFailure(.generationFailed, "no generator produced a tree: " + reasons.joined(separator: "; "))
    }

    /// The absolute path of `command` (as given, or found on PATH), if executable.
    static func resolveExecutable(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(command)", X_OK) == 0 {
            return "\(dir)/\(command)"
        }
        return nil
    }
}
