import ArgumentParser
import Foundation
import JobStore
import RunnerCore
import Sandbox

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check configuration, database, generators and sandbox.")
    @OptionGroup var common: CommonOptions

    func run() async throws {
        var failed = false
        func report(_ state: String, _ what: String) {
            print("\(state.padding(toLength: 5, withPad: " ", startingAt: 0)) \(what)")
            if state == "fail" { failed = true }
        }
        let config = try common.configuration()
        report("ok", "configuration valid (database \(config.databaseName), generators \(config.generators.joined(separator: ",")))")
        do {
            let store = try common.store(config)
            report("ok", "database reachable, server \(try await store.ping())")
        } catch {
            report("fail", "database: \(error)")
        }
        if let abi = Landlock.abiVersion() { report("ok", "Landlock ABI \(abi)") }
        else { report(config.sandboxEnforced ? "fail" : "warn", "Landlock unavailable in this kernel") }
        if !config.sandboxEnforced { report("warn", "SANDBOX=off: jobs run unconfined") }
        let childPath = ChildLocator.path(config)
        report(childPath == nil ? "fail" : "ok", "job child: \(childPath ?? "not found (set AGENT_RUNNER_JOB_PATH)")")
        var isDir: ObjCBool = false
        let root = config.workdirRoot
        if FileManager.default.fileExists(atPath: root, isDirectory: &isDir) {
            report(access(root, W_OK) == 0 ? "ok" : "fail", "workspace root \(root) writable")
        } else {
            report("warn", "workspace root \(root) does not exist yet (created on first job)")
        }
        report(config.geminiAPIKey == nil ? "warn" : "ok", "Gemini API key \(config.geminiAPIKey == nil ? "not set" : "set")")
        report(config.githubToken == nil ? "warn" : "ok", "GITHUB_TOKEN \(config.githubToken == nil ? "not set: http(s) pushes are skipped" : "set")")
        if failed { throw ExitCode(1) }
    }
}
