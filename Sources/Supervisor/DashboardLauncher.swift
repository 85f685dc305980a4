import ArgumentParser
import Foundation
import RunnerCore

/// `agent-runner dashboard [--listen ADDR] [--env-file FILE]`: replaces this
/// process with `agent-runner-dashboard` from beside this binary, passing the
/// arguments and the environment on. The dashboard lives in its own
/// executable so the supervisor never links the web server.
struct DashboardLauncher: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve the operators' web dashboard (runs agent-runner-dashboard; needs DASHBOARD_TOKEN).",
        discussion: "Options: --listen HOST:PORT (default 127.0.0.1:8090), --env-file FILE. "
            + "See `agent-runner-dashboard --help`.")

    @Argument(parsing: .captureForPassthrough, help: "Options for agent-runner-dashboard.")
    var arguments: [String] = []

    func run() throws {
        guard let path = Self.executablePath() else {
            throw fail("cannot find agent-runner-dashboard beside agent-runner", code: 69)
        }
        let argv = CStringArray([path] + arguments)
        execv(path, argv.pointers)
        throw fail("cannot run \(path): \(String(cString: strerror(errno)))", code: 69)
    }

    /// `agent-runner-dashboard` in this executable's directory, when executable.
    static func executablePath() -> String? {
        guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let sibling = (me as NSString).deletingLastPathComponent + "/agent-runner-dashboard"
        return access(sibling, X_OK) == 0 ? sibling : nil
    }
}
