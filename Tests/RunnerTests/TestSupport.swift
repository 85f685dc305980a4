import Foundation
@testable import JobStore
import RunnerCore
import SupervisorKit
import Testing

/// Shared helpers: the real MongoDB-wire server (MONGODB_URI from
/// scripts/with-db.sh), real git, and the real built binaries.
enum TestEnv {
    /// The server started by `make test`.
    static var mongoURI: String {
        guard let uri = ProcessInfo.processInfo.environment["MONGODB_URI"] else {
            fatalError("MONGODB_URI is not set: run the tests with `make test` (scripts/with-db.sh)")
        }
        return uri
    }

    /// The directory holding agent-runner and agent-runner-job (next to the test bundle).
    static var binDir: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        var dir = (exe as NSString).deletingLastPathComponent
        while !dir.isEmpty, dir != "/", !FileManager.default.fileExists(atPath: dir + "/agent-runner-job") {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir
    }

    /// A fresh temporary directory.
    static func tempDir(_ tag: String = "t") -> String {
        let path = NSTemporaryDirectory() + "agent-runner-test-\(tag)-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Whether this is a debug build, whose products carry the `#if DEBUG`
    /// test hooks (`swift test -c release` builds without them).
    static let debugBuild: Bool = {
        #if DEBUG
        return true
        #else
        return false
        #endif
    }()

    /// The repository's root (this file is Tests/RunnerTests/TestSupport.swift).
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Tests/Fixtures: the fixture servers, stand-in children and agents.
    static let fixtures = repoRoot + "/Tests/Fixtures"

    static func exampleSpec(_ name: String) throws -> JSONValue {
        try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: repoRoot + "/examples/\(name)")))
    }
}

/// One HTTP request made with curl (`extra`: more curl arguments): the status
/// (0 when nothing answered) and the body without trailing newlines.
func httpRequest(_ url: String, _ extra: [String] = []) async throws -> (status: Int, body: String) {
    let r = try await runProcess("/usr/bin/curl", ["-s", "-m", "8", "-w", "\n%{http_code}"] + extra + [url])
    let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n").trimmingCharacters(in: .newlines))
}

/// The result of a finished process.
struct ProcessResult {
    var status: Int32
    var reason: Process.TerminationReason
    var stdout: String
    var stderr: String
    /// The process's id (it has exited: only for finding what it left behind).
    var pid: Int32 = 0
}

/// Runs `body` on a new thread and awaits it: for test waits as long as a
/// process (`onDedicatedThread`'s pool is bounded, and parallel tests would queue).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
        Thread.detachNewThread { c.resume(with: Result { try body() }) }
    }
}

/// Writes `text` to `path` as an executable script (a stand-in child, proxy or agent).
func writeExecutable(_ path: String, _ text: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    chmod(path, 0o755)
}

/// Runs a real process to completion without blocking the cooperative pool.
func runProcess(_ path: String, _ args: [String], env: [String: String]? = nil, cwd: String? = nil,
                timeout: Double = 120) async throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let env { p.environment = env }
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let deadline = DispatchWorkItem { if p.isRunning { p.terminate() } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: deadline)
    // Blocking reads and the wait run on threads of their own (not the cooperative
    // pool, and no dispatch read sources on descriptors that close under them);
    // not the bounded pool's either: a process may run for minutes, and
    // parallel tests would queue behind it.
    let (stdout, stderr) = try await onOwnThread { () -> (Data, Data) in
        let errData = Locked(Data())
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let data = err.fileHandleForReading.readDataToEndOfFile()
            errData.withLock { $0 = data }
            done.signal()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        return (outData, errData.withLock { $0 })
    }
    deadline.cancel()
    return ProcessResult(status: p.terminationStatus, reason: p.terminationReason,
                         stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
                         pid: p.processIdentifier)
}


/// Real git on the command line, for checking what was pushed.
enum Git {
    static func run(_ args: [String]) async throws -> String {
        let r = try await runProcess("/usr/bin/git", args)
        guard r.status == 0 else { throw GitCLIError(message: "git \(args.joined(separator: " ")): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func initBare(_ path: String) async throws {
        _ = try await run(["init", "-q", "--bare", "-b", "main", path])
    }

    struct GitCLIError: Error { let message: String }
}

/// Harness clean-ups under way, each on a thread of its own. The process
/// waits for them when it exits, before the exit handlers of libmongoc and
/// libcrypto (registered earlier, so run later) tear those down: a drop
/// still running then was seen as a SIGSEGV after the last test.
enum PendingCleanups {
    private static let running = Locked(0)
    private static let waitsAtExit: Void = { atexit { PendingCleanups.waitForAll() } }()

    static func run(_ body: @escaping @Sendable () -> Void) {
        _ = waitsAtExit
        running.withLock { $0 += 1 }
        Thread.detachNewThread {
            body()
            running.withLock { $0 -= 1 }
        }
    }

    /// Blocks until every clean-up ended, for at most a minute.
    static func waitForAll() {
        let end = Date().addingTimeInterval(60)
        while running.withLock({ $0 }) > 0, Date() < end { usleep(10_000) }
    }
}

/// One test's world: a private database, a workspace root and a bare remote.
struct Harness {
    let dbName = "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
    let root = TestEnv.tempDir("h")
    var remote: String { root + "/remote.git" }
    var workdir: String { root + "/work" }
    /// The workspace of job `id` under `workdir`.
    func workspace(_ id: String) -> String { WorkspaceLayout(workdirRoot: workdir, jobId: id).root }
    let store: JobStore

    init() throws {
        store = JobStore(pool: try MongoPool(uri: TestEnv.mongoURI, databaseName: dbName), logCap: 1000)
    }

    func makeRemote() async throws { try await Git.initBare(remote) }

    /// The environment of a supervisor run against this harness.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "PATH": "/usr/local/bin:/usr/bin:/bin", "MONGODB_URI": TestEnv.mongoURI, "MONGO_DB_NAME": dbName,
            "WORKDIR_ROOT": workdir, "GENERATORS": "scaffold", "CLINE_ENABLED": "false",
            "RUNNER_POLL_SECONDS": "0.2", "AGENT_RUNNER_JOB_PATH": TestEnv.binDir + "/agent-runner-job",
            "KEEP_WORKSPACES": "always",
            // The tests' remotes: bare repositories below this harness's folder
            // (never the folder itself), and git servers on loopback over http.
            "GIT_LOCAL_REMOTE_ROOTS": root, "GIT_ALLOWED_SCHEMES": "https,http",
        ]
        env.merge(extra) { $1 }
        return env
    }

    /// Runs `agent-runner <args>` (from the harness directory, so no .env is read).
    func agentRunner(_ args: [String], env extra: [String: String] = [:], timeout: Double = 120) async throws -> ProcessResult {
        try await runProcess(TestEnv.binDir + "/agent-runner", args, env: environment(extra), cwd: root, timeout: timeout)
    }

    /// Seeds a project (remote = the bare repo) and a job; returns the job id text.
    /// The default remote's folder is made if missing (a local remote must
    /// exist to pass the supervisor's check; stand-in children never open it).
    func seed(_ spec: JSONValue, repo: String? = nil, project: String = "Test project") async throws -> String {
        if repo == nil { try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true) }
        let projectId = try await store.insertProject(name: project, repoURL: repo ?? "file://" + remote)
        return try await store.insertJob(projectId: projectId, spec: spec)
    }

    func job(_ id: String) async throws -> JSONValue {
        guard let j = try await store.job(id) else { throw Git.GitCLIError(message: "no job \(id)") }
        return j
    }

    /// Removes the harness's directory and drops its database, on a thread
    /// of its own: both block (a drop took up to 2 s on a loaded machine, on
    /// one of the cooperative pool's two threads, from every test's `defer`).
    /// The process waits for them at exit (`PendingCleanups`).
    func cleanup() {
        let root = root, pool = store.pool
        PendingCleanups.run {
            try? FileManager.default.removeItem(atPath: root)
            _ = try? pool.commandBlocking(.object(["dropDatabase": .int(1)]))
        }
    }
}

/// A minimal valid spec.
let tinySpec: JSONValue = [
    "name": "Tiny", "nodes": [["id": "a", "type": "frontend", "data": ["label": "Web", "framework": "react"]],
                              ["id": "b", "type": "backend", "data": ["label": "API", "framework": "express"]]],
    "edges": [["id": "e", "source": "a", "target": "b"]],
]

/// A Python fixture server from Tests/Fixtures, started on a free loopback
/// port (it prints the port first) and killed by `stop()`.
final class FixtureServer: Sendable {
    let process: Process
    let port: Int

    init(_ script: String, _ args: [String], environment: [String: String] = [:]) async throws {
        let path = TestEnv.fixtures + "/" + script
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", path] + args
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        process = p
        let line = try await onDedicatedThread { () -> String in
            var bytes = Data()
            while let b = try? out.fileHandleForReading.read(upToCount: 1), !b.isEmpty, b != Data([0x0A]) { bytes += b }
            return String(decoding: bytes, as: UTF8.self)
        }
        port = Int(line) ?? 0
    }

    /// SIGKILL: the test process may have SIGTERM ignored, which children inherit.
    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A JSON-lines request log written by a fixture.
    static func jsonLines(_ path: String) throws -> [JSONValue] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { try JSONValue.parse(String($0)) }
    }
}

/// A free loopback TCP port (bound, read, released).
func freePort() -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Runs the real agent-runner-job on `ticket` the way the supervisor does:
/// the ticket as one line on a stdin that stays open, the push token (none)
/// answered when asked for, stdin closed once the child has exited.
enum JobChildRun {
    struct Result {
        var events: [ChildEvent]
        var stdout: String
        var stderr: String
        var status: RunnerCore.ExitStatus
    }

    /// `secretsLine`: the line to answer the push-token request with, instead of `token`'s.
    static func run(_ ticket: JobTicket, env: [String: String], namespaces: Namespaces? = nil,
                    token: String? = nil, secretsLine: [UInt8]? = nil) async throws -> Result {
        let line = Array(try JSONEncoder().encode(ticket)) + [0x0A]
        let child = try await onDedicatedThread {
            try ChildProcess(executable: TestEnv.binDir + "/agent-runner-job", arguments: [], environment: env,
                             stdin: line, namespaces: namespaces, keepInputOpen: true)
        }
        var events: [ChildEvent] = [], out: [String] = [], err: [String] = []
        for await o in child.output {
            switch o {
            case .stdout(let text):
                out.append(text)
                guard let e = try? JSONDecoder().decode(ChildEvent.self, from: Data(text.utf8)) else { continue }
                events.append(e)
                if e == .pushTokenRequest {
                    let secrets = Array(try JSONEncoder().encode(ChildSecrets(githubToken: token))) + [0x0A]
                    try await child.send(secretsLine ?? secrets)
                }
            case .stderr(let text): err.append(text)
            }
        }
        let status = await child.waitForExit()
        child.closeInput()
        return Result(events: events, stdout: out.joined(separator: "\n"), stderr: err.joined(separator: "\n"), status: status)
    }
}

/// The queue suites' shared set-up: a fake job child that logs its runs, a
/// supervisor in the background, and waits. Suites conform, or hold a
/// `QueueFixture`, instead of instantiating another suite.
protocol QueueFixtures {}

extension QueueFixtures {
    /// A child that records its runs in `<root>/runs.log` and sleeps `seconds`.
    func fakeChild(_ h: Harness, seconds: Double) throws -> String {
        let script = TestEnv.fixtures + "/fake_child.py"
        let path = h.root + "/fake-child-\(seconds)"
        try "#!/bin/sh\nexec /usr/bin/python3 \(script) \(seconds) \(h.root)/runs.log\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// (kind, jobId, project, time) for each line of the run log.
    func runs(_ h: Harness) -> [(kind: String, job: String, project: String, time: Double)] {
        let text = (try? String(contentsOfFile: h.root + "/runs.log", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            let f = line.split(separator: " ").map(String.init)
            return (f[0], f[1], f[2], Double(f[3]) ?? 0)
        }
    }

    /// Waits until `condition` holds; records an issue naming `what` when it never did.
    func waitFor(_ what: String, timeout: Double = 30, _ condition: () async throws -> Bool) async throws {
        if try await !eventually(timeout, condition) { Issue.record("timed out waiting for \(what)") }
    }

    func waitExit(_ p: Process, timeout: Double = 30) async throws -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < end { try await Task.sleep(for: .milliseconds(100)) }
        return p.isRunning ? nil : p.terminationStatus
    }
}

extension Harness {
    /// `agent-runner run` (plus `args`) in the background with this harness's
    /// environment plus `env`; its stderr (the log) goes to `log`, else nowhere.
    func startSupervisor(_ env: [String: String], args: [String] = [], log: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnv.binDir + "/agent-runner")
        p.arguments = ["run"] + args
        p.environment = environment(env)
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        if let log { FileManager.default.createFile(atPath: log, contents: nil) }
        p.standardError = FileHandle(forWritingAtPath: log ?? "/dev/null")
        try p.run()
        return p
    }
}

/// Waits until `condition` holds, at most `timeout` seconds (a liveness
/// bound, not a speed check); false when it never did.
func eventually(_ timeout: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

/// Direct document edits standing in for the web app.
enum CollectionTestOps {
    static func setField(_ coll: OpaquePointer, id: String, field: String, value: JSONValue) throws {
        try CollectionOps.update(coll, filter: ["_id": .string(id)], update: ["$set": [field: value]])
    }
}

/// The queue fixtures as a value, for suites that only borrow them.
struct QueueFixture: QueueFixtures {}

/// Fake `cline` executables and the environment that runs them: shared by
/// ClineTests and the suites that need an agent's output.
protocol ClineFixtures {}

extension ClineFixtures {
    /// Writes an executable script at `<root>/bin/cline` (its own directory:
    /// the sandbox grants read+execute on CLINE_CMD's directory).
    func fakeCline(_ h: Harness, _ body: String) throws -> String {
        let dir = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/cline"
        try ("#!/bin/sh\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func env(_ cline: String, _ extra: [String: String] = [:]) -> [String: String] {
        ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline,gemini,scaffold",
         "GITHUB_TOKEN": "ghp_FAKEfakeFAKEfakeFAKEfake0123456789"].merging(extra) { $1 }
    }

    func logs(_ job: JSONValue) -> [String] { job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }
}

/// The Cline fixtures as a value.
struct ClineFixture: ClineFixtures {}
