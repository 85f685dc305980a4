import ArgumentParser
import Foundation
import JobStore
import RunnerCore
import Sandbox
import SupervisorKit

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check configuration, database, generators and sandbox.")
    @OptionGroup var common: CommonOptions
    @Flag(help: "Also call the Gemini API once (GET the model) and the Cline provider once (its model list, through the egress proxy) to check the keys, and ask GitHub for a GitHub App's permissions.") var online = false

    func run() async throws {
        var failed = false
        func report(_ state: String, _ what: String) {
            print("\(state.padding(toLength: 5, withPad: " ", startingAt: 0)) \(what)")
            if state == "fail" { failed = true }
        }
        let config = try common.configuration()
        report("ok", "configuration valid (database \(config.databaseName), generators \(config.child.generators.map(\.rawValue).joined(separator: ",")))")
        do {
            let store = try common.store(config)
            report("ok", "database reachable, server \(try await store.ping())")
            // A database without a jobs collection yet has no indexes either (`run` creates both).
            let indexes = (try? await store.pool.command(["listIndexes": "jobs"]))?["cursor"]?["firstBatch"]?.arrayValue?
                .compactMap { $0["name"]?.stringValue } ?? []
            let wanted = JobStore.indexNames
            let missing = wanted.filter { !indexes.contains($0) }
            report(missing.isEmpty ? "ok" : "warn", missing.isEmpty ? "indexes present: \(wanted.joined(separator: ", "))"
                : "indexes missing (created when `run` starts): \(missing.joined(separator: ", "))")
            // The event stream's indexes: (jobId, seq) and the TTL index at JOB_EVENTS_TTL_DAYS.
            let events = (try? await store.eventIndexes()) ?? []
            let eventsMissing = JobStore.eventIndexNames.filter { n in !events.contains { $0["name"]?.stringValue == n } }
            let ttl = events.first { $0["name"]?.stringValue == "ttl_at" }?["expireAfterSeconds"]?.intValue
            if !eventsMissing.isEmpty {
                report("warn", "job_events indexes missing (created when `run` starts): \(eventsMissing.joined(separator: ", "))")
            } else if ttl != Int64(config.eventsTTLDays) * 86_400 {
                report("warn", "job_events TTL index keeps events \(ttl.map { "\($0 / 86_400) days" } ?? "for ever"), "
                    + "not JOB_EVENTS_TTL_DAYS=\(config.eventsTTLDays) (changed when `run` starts)")
            } else {
                report("ok", "job_events indexes present: job_seq, ttl_at (\(config.eventsTTLDays) days)")
            }
            // Every query and update shape the runner uses, once, on scratch collections.
            let shapes = await store.checkQueryShapes()
            let rejected = shapes.filter { $0.error != nil }
            for r in rejected {
                if r.error is WrongAnswer { report("fail", "database answers \(r.name) wrongly: \(r.error!)") }
                else { report("fail", "database rejects \(r.name): \(r.error!)") }
            }
            if rejected.isEmpty {
                report("ok", "database accepts all \(shapes.count) query and update shapes the runner uses, and answers them as asked")
            }
            // The supervisor's own check of its change stream (a marker it must deliver), once.
            let stream = await store.checkChangeStream()
            if stream.ok {
                report("ok", "change stream checked: new jobs are picked up and cancels arrive at once")
            } else {
                report("warn", "change stream not usable: \(stream.why); the runner polls every RUNNER_POLL_SECONDS "
                    + "and reads cancels with the lease renewal")
            }
        } catch {
            report("fail", "database: \(error)")
        }
        let sandboxFail = config.child.sandboxEnforced ? "fail" : "warn"
        if let abi = Landlock.abiVersion() { report("ok", "Landlock ABI \(abi)") }
        else { report(sandboxFail, "Landlock unavailable in this kernel") }
        switch (SyscallFilter.currentMode(), SyscallFilter.apiLevel()) {
        case (nil, _): report(sandboxFail, "seccomp: not supported by this kernel (no Seccomp field in /proc/self/status)")
        case (_, let api) where api < 1: report(sandboxFail, "seccomp: filters unavailable (libseccomp API level \(api))")
        case (let mode?, let api):
            report("ok", "seccomp: filters supported (libseccomp API level \(api)); this process: "
                + (mode == 0 ? "unfiltered" : "already filtered (mode \(mode), e.g. a container runtime's profile)"))
        }
        if !config.child.sandboxEnforced { report("warn", "SANDBOX=off: jobs run UNCONFINED (each job's log says so)") }
        if let range = config.jobUIDRange {
            if geteuid() == 0 {
                report("ok", "JOB_UID_RANGE \(range.lowerBound)-\(range.upperBound): each job child runs as its own uid")
            } else {
                report("fail", "JOB_UID_RANGE is set but this process is not root (euid \(geteuid())): jobs will fail")
            }
        } else {
            report("ok", "JOB_UID_RANGE unset: job children run as uid \(geteuid())")
        }
        let childPath = ChildLocator.path(config)
        report(childPath == nil ? "fail" : "ok", "job child: \(childPath ?? "not found (set AGENT_RUNNER_JOB_PATH)")")
        await BuildCheck.report(childPath: childPath, report: report)
        if let range = config.jobUIDRange, let childPath {
            let uid = UInt32(range.lowerBound)
            if let why = ExecuteAccess.problem(path: childPath, uid: uid, gid: uid) {
                report("fail", "JOB_UID_RANGE: uid \(uid) cannot execute the job child \(childPath): \(why) is missing "
                    + "(install agent-runner-job where every uid can reach it, e.g. /usr/local/bin)")
            } else {
                report("ok", "JOB_UID_RANGE: uid \(uid) can execute the job child \(childPath)")
            }
        }
        if let childPath {
            await ContainmentChecks.namespacesAndSelfTest(childPath: childPath, config: config, report: report)
        }
        ContainmentChecks.processLimit(config, report: report)
        ContainmentChecks.network(config, report: report)
        var isDir: ObjCBool = false
        let root = config.workdirRoot
        if FileManager.default.fileExists(atPath: root, isDirectory: &isDir) {
            report(access(root, W_OK) == 0 ? "ok" : "fail", "workspace root \(root) writable")
        } else {
            report("warn", "workspace root \(root) does not exist yet (created on first job)")
        }
        if let childPath {
            await checkTools(childPath: childPath, config: config, report: report)
        }
        var fs = statvfs()
        let probe = FileManager.default.fileExists(atPath: root) ? root : (root as NSString).deletingLastPathComponent
        if statvfs(probe, &fs) == 0 {
            let freeMB = Int(fs.f_bavail) * Int(fs.f_frsize) / 1_048_576
            report(freeMB < 1024 ? "warn" : "ok", "free space under \(probe): \(freeMB) MB")
        }
        let policy = config.remotePolicy
        let missingRoots = policy.localRoots.filter { RemotePolicy.realPath($0) == nil }
        report(missingRoots.isEmpty ? "ok" : "warn", policy.summary
            + (missingRoots.isEmpty ? "" : "; missing: \(missingRoots.joined(separator: ":"))"))
        report("ok", "push tokens go to GIT_TOKEN_HOSTS \(config.gitToken.tokenHosts.map(\.description).joined(separator: ",")) only"
            + (config.gitToken.source == .githubApp ? " (the App's GitHub host)" : ""))
        switch config.gitToken.source {
        case .env:
            report(config.githubToken == nil ? "warn" : "ok", "GIT_TOKEN_SOURCE=env: GITHUB_TOKEN \(config.githubToken == nil ? "not set: http(s) pushes are skipped" : "set")")
        case .user:
            report("ok", "GIT_TOKEN_SOURCE=user: each job's user's token from \(config.gitToken.userCollection).\(config.gitToken.userField)")
        case .githubApp:
            if let helper = ChildLocator.besideThisBinary {
                report("ok", "GIT_TOKEN_SOURCE=github-app: app \(config.gitToken.appId ?? "-") at \(config.gitToken.apiURL), "
                    + "installation tokens minted per job by \(helper) --github-app-token once GitHub says the job's user "
                    + "(\(config.gitToken.userCollection).\(config.gitToken.userLoginField)) may push")
                let needed = GitHubAppTokenRequest.required(pullRequests: config.child.publish.allowed.contains(.pullRequest))
                    .sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
                if online {
                    if let problem = await PushTokenProvider.appPermissionProblem(config, helper: helper) {
                        report("fail", "GitHub App permissions (\(needed) needed): \(problem)")
                    } else {
                        report("ok", "GitHub App permissions: the App and its installations have \(needed)")
                    }
                } else {
                    report("ok", "GitHub App permissions needed: \(needed) (not checked; --online asks GitHub)")
                }
            } else {
                report("fail", "GIT_TOKEN_SOURCE=github-app: the token helper, agent-runner-job beside agent-runner "
                    + "(\(ChildLocator.siblingPath)), is missing or not executable (AGENT_RUNNER_JOB_PATH is never used for it)")
            }
        }
        if failed { throw ExitCode(1) }
    }

    /// cline, Gemini and libgit2 are checked by `agent-runner-job --probe`:
    /// the supervisor links neither libcurl nor libgit2.
    private func checkTools(childPath: String, config: RunnerConfiguration,
                            report: (String, String) -> Void) async {
        let wantsCline = config.child.generators.contains(.cline) && config.child.clineEnabled
        let wantsGemini = config.child.generators.contains(.gemini)
        // The online Gemini check goes through an egress proxy that holds the
        // key, as a job's Gemini call does: the probe gets the route's token only.
        var geminiProxy: DoctorProxy?
        var geminiRoute: GeminiRoute?
        if online, wantsGemini, let key = config.geminiAPIKey {
            let token = GeminiRoute.newToken()
            do {
                let proxy = try await DoctorProxy.start(gemini: GeminiUpstream(apiBase: config.child.geminiAPIBase, apiKey: key,
                                                                               routeToken: token))
                geminiProxy = proxy
                geminiRoute = GeminiRoute(socketPath: proxy.socketPath, token: token)
            } catch {
                report("fail", "gemini: the egress proxy for the online check did not start: \(error)")
            }
        }
        let request = ToolProbeRequest(settings: config.child, clineCommand: wantsCline ? config.child.clineCommand : nil,
                                       geminiRoute: geminiRoute, online: online)
        let probe: ToolProbeReport
        do {
            probe = try await ToolProbeRun.run(childPath: childPath, request: request)
            geminiProxy?.stop()
        } catch {
            geminiProxy?.stop()
            report("fail", "tool probe (\(childPath) --probe): \(error)")
            return
        }
        if config.child.generators.contains(.cline) {
            if !config.child.clineEnabled { report("warn", "cline: disabled (CLINE_ENABLED=false)") }
            else if let cline = probe.clinePath {
                report("ok", "cline: \(cline) \(await ToolVersion.of(cline))")
            } else {
                report("warn", "cline: '\(config.child.clineCommand)' not found; jobs fall back to the next generator")
            }
            if config.child.clineProvider != nil {
                if online {
                    let (state, line) = await ProviderCheck.run(config: config)
                    report(state, line)
                } else {
                    report(config.clineAPIKey == nil ? "fail" : "ok", "cline provider: \(config.child.clineProvider!.kind.rawValue) at "
                        + "\(config.child.clineProvider!.upstreamBaseURL), key \(config.clineAPIKey == nil ? "NOT set" : "set") "
                        + "(no network call; --online asks it through the egress proxy)")
                }
            }
        }
        for (state, line) in DoctorAgents.lines(probe.agents ?? [], settings: config.child) { report(state, line) }
        if wantsGemini {
            if probe.geminiChecked {
                report(probe.geminiProblem == nil ? "ok" : "fail", "gemini: model \(config.child.geminiModel) at \(config.child.geminiAPIBase) "
                    + (probe.geminiProblem.map { "refused: \($0)" } ?? "answered"))
            } else if !(online && config.geminiAPIKey != nil) { // else the proxy's failure is reported above
                report(config.geminiAPIKey == nil ? "warn" : "ok", "gemini: API key \(config.geminiAPIKey == nil ? "not set" : "set"), "
                    + "model \(config.child.geminiModel) at \(config.child.geminiAPIBase) (no network call; --online makes one)")
            }
        }
        report("ok", "libgit2 \(probe.libgit2)")
    }
}

/// Runs `agent-runner-job --self-test` (see SandboxSelfTest) with a clean
/// environment and TMPDIR = WORKDIR_ROOT when it exists and is writable (so
/// the probe runs where jobs run), else /tmp.
enum SelfTestRun {
    static let success = "sandbox self-test: writes outside the workspace and namespace creation refused"

    /// ("ok" or "fail", the line to print).
    static func run(childPath: String, config: RunnerConfiguration) async -> (String, String) {
        // Without namespaces nothing is thrown.
        let (state, line, _) = (try? await run(childPath: childPath, config: config, namespaces: nil))
            ?? ("fail", "sandbox self-test: cannot start \(childPath)", nil)
        return (state, line)
    }

    /// The same, spawned in `namespaces` as a job child is (then with
    /// `--network-namespace` when they include one: the self-test brings its
    /// loopback up first). Also returns the self-test's whole report.
    /// Throws the spawn's `Errno` only when the namespaces cannot be created.
    static func run(childPath: String, config: RunnerConfiguration,
                    namespaces: Namespaces?) async throws(Errno) -> (String, String, JSONValue?) {
        var isDir: ObjCBool = false
        let root = config.workdirRoot
        let tmp = FileManager.default.fileExists(atPath: root, isDirectory: &isDir) && isDir.boolValue
            && access(root, W_OK | X_OK) == 0 ? root : "/tmp"
        let run: ChildRun
        do {
            run = try await ChildRun.collect(childPath, ["--self-test"] + (namespaces?.network == true ? ["--network-namespace"] : []),
                                             environment: ["PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": tmp],
                                             namespaces: namespaces)
        } catch let e as Errno where namespaces != nil {
            throw e
        } catch {
            return ("fail", "sandbox self-test: cannot start \(childPath): \(error)", nil)
        }
        let json = try? JSONValue.parse(run.lastJSONLine ?? "")
        if run.status == .exited(0), json?["ok"]?.boolValue == true {
            return ("ok", success, json)
        }
        return ("fail", "sandbox self-test (\(run.status)): \(run.summary)", json)
    }
}

/// One short run of the job child in a doctor mode: its output lines (stdout
/// and stderr, in order) and how it ended.
struct ChildRun {
    var lines: [String]
    var status: ExitStatus

    /// The last line that looks like a JSON object (the mode's report).
    var lastJSONLine: String? { lines.last { $0.hasPrefix("{") } }
    /// All the output on one line, for a failure message.
    var summary: String { lines.isEmpty ? "no output" : lines.joined(separator: " | ") }

    static func collect(_ path: String, _ arguments: [String], environment: [String: String],
                        stdin: [UInt8] = [], namespaces: Namespaces? = nil) async throws -> ChildRun {
        // The spawn blocks (clone, id maps, exec report): off the cooperative pool.
        let child = try await onDedicatedThread {
            try ChildProcess(executable: path, arguments: arguments, environment: environment, stdin: stdin,
                             namespaces: namespaces)
        }
        var lines: [String] = []
        for await line in child.output {
            switch line {
            case .stdout(let text), .stderr(let text): lines.append(text)
            }
        }
        return ChildRun(lines: lines, status: await child.waitForExit())
    }
}

/// `<tool> --version`, first line, bounded to 5 s.
enum ToolVersion {
    static func of(_ path: String) async -> String {
        guard let child = try? await onDedicatedThread({
            try ChildProcess(executable: path, arguments: ["--version"],
                             environment: ["PATH": "/usr/local/bin:/usr/bin:/bin"], stdin: [])
        }) else { return "" }
        let timer = Task { try await Task.sleep(for: .seconds(5)); child.signalGroup(SIGKILL) }
        var first = ""
        for await line in child.output where first.isEmpty {
            if case .stdout(let text) = line { first = text }
        }
        _ = await child.waitForExit()
        timer.cancel()
        return first.isEmpty ? "" : "(\(first.prefix(80)))"
    }
}

/// Runs `agent-runner-job --probe` with a clean environment; the request
/// (never a key: see `ToolProbeRequest`) goes on stdin, never in argv.
enum ToolProbeRun {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func run(childPath: String, request: ToolProbeRequest) async throws -> ToolProbeReport {
        let run = try await ChildRun.collect(childPath, ["--probe"],
                                             environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"],
                                             stdin: Array(try JSONEncoder().encode(request)))
        guard run.status == .exited(0), let json = run.lastJSONLine,
              let report = try? JSONDecoder().decode(ToolProbeReport.self, from: Data(json.utf8)) else {
            throw Failure(description: "\(run.status): \(run.summary)")
        }
        return report
    }
}
