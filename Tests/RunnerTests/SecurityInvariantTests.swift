#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
import Foundation
import ChildGeneration
import JobStore
import RunnerCore
import Sandbox
import Testing

/// Issue 13, item 7 (in part): security invariants checked, not assumed.
@Suite struct SecurityInvariantTests {
    static let limits = TreeLimits(maxFiles: 100, maxFileBytes: 1 << 20, maxTotalBytes: 8 << 20)

    /// An agent writes files itself: the scan applies TreeWriter's case rule.
    @Test func scannerRejectsPathsThatCollideInCase() throws {
        let repo = TestEnv.tempDir("case")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        try "r".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
        try "r".write(toFile: repo + "/readme.md", atomically: true, encoding: .utf8)
        try "f".write(toFile: repo + "/src", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: repo + "/SRC", withIntermediateDirectories: true)
        try "x".write(toFile: repo + "/SRC/main.py", atomically: true, encoding: .utf8)
        let error = #expect(throws: JobFailure.self) { try TreeScanner.scan(repo, limits: Self.limits) }
        #expect(error?.code == .unsafeOutput)
        #expect(error?.message.contains("duplicate path") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("src (both a file and a directory)") == true, "\(error?.message ?? "")")
        // The writer says the same of the same tree.
        let writer = TreeWriter(root: TestEnv.tempDir("w"), limits: Self.limits)
        let writerError = #expect(throws: JobFailure.self) {
            try writer.check([("README.md", [1]), ("readme.md", [1]), ("src", [1]), ("SRC/main.py", [1])])
        }
        #expect(writerError?.message == error?.message)
    }

    @Test func aCaseCleanTreePasses() throws {
        let repo = TestEnv.tempDir("clean")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        try "r".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: repo + "/src", withIntermediateDirectories: true)
        try "x".write(toFile: repo + "/src/Main.py", atomically: true, encoding: .utf8)
        try "x".write(toFile: repo + "/src/util.py", atomically: true, encoding: .utf8)
        #expect(try TreeScanner.scan(repo, limits: Self.limits).files == ["README.md", "src/Main.py", "src/util.py"])
    }

    /// The seccomp check reads every thread: in this (unfiltered) test process, all of them.
    @Test func unfilteredThreadsAreFound() {
        let unfiltered = SyscallFilter.threadsWithoutFilter()
        #expect(!unfiltered.isEmpty)
        #expect(unfiltered.contains(Int(getpid())) || SyscallFilter.currentMode() == 2)
    }

    /// TSYNC's result is checked: a thread that holds a seccomp filter of its
    /// own (not an ancestor of the new one) cannot be synchronised, so the
    /// kernel loads the filter on no thread and `install` must say so. Runs in
    /// a process of its own (an exit test): the filter would bind this one.
    @Test func aThreadThatCannotBeSynchronisedFailsTheFilter() async throws {
        let result = try await #require(processExitsWith: .success, observing: [\.standardErrorContent]) {
            let ready = DispatchSemaphore(value: 0)
            let thread = Thread {
                // A filter of this thread's own: allow everything but acct(2).
                if let ctx = seccomp_init(SCMP_ACT_ALLOW) {
                    _ = seccomp_rule_add_array(ctx, SCMP_ACT_KILL_PROCESS, seccomp_syscall_resolve_name("acct"), 0, nil)
                    if seccomp_load(ctx) != 0 { exit(10) }
                    seccomp_release(ctx)
                }
                ready.signal()
                while true { sleep(60) }
            }
            thread.start()
            ready.wait()
            do {
                try SyscallFilter.install()
                exit(11) // loaded although a thread kept its own filter
            } catch let error as Errno {
                FileHandle.standardError.write(Data("install: \(error)\n".utf8))
                exit(error.code == ESRCH ? 0 : 12)
            } catch {
                exit(13)
            }
        }
        let said = String(decoding: result.standardErrorContent, as: UTF8.self)
        #expect(said.contains("could not be synchronised (TSYNC)"), "\(said)")
    }

    /// Confinement refuses to start while another thread exists (Landlock
    /// would not bind it), and it checks that before applying anything.
    @Test func confinementRefusesASecondThread() async {
        await #expect(processExitsWith: .success) {
            let ready = DispatchSemaphore(value: 0)
            let thread = Thread {
                ready.signal()
                while true { sleep(60) }
            }
            thread.start()
            ready.wait()
            if Confinement.threadCount() < 2 { exit(20) }
            var before = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &before)
            let confinement = Confinement(
                rules: .init(readWrite: ["/tmp"], readExecute: Confinement.systemPaths, devices: Confinement.devicePaths),
                memoryMB: 64, cpuSeconds: 5, maxWriteMB: 1, enforced: true)
            do {
                _ = try confinement.apply()
                exit(21) // confined although another thread runs unconfined
            } catch let failure as JobFailure {
                guard failure.message.contains("before any other thread exists") else { exit(22) }
            } catch {
                exit(23)
            }
            // Nothing was applied: no rlimit, no no-new-privs.
            var after = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &after)
            if after.rlim_cur != before.rlim_cur { exit(24) }
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            if !status.contains("NoNewPrivs:\t0") { exit(25) }
            exit(0)
        }
    }

    /// The agent writes HOME (the job's home/): a ~/.gitconfig it plants
    /// there must not steer the push (url.insteadOf would send the commit,
    /// and a token with it, elsewhere). libgit2 reads no global config.
    @Test func aGitConfigPlantedByTheAgentDoesNotRedirectThePush() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let elsewhere = h.root + "/elsewhere.git"
        try await Git.initBare(elsewhere)
        let bin = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try """
        #!/bin/sh
        printf '[url "file://\(elsewhere)"]\\n\\tinsteadOf = file://\(h.remote)\\n[url "file://\(elsewhere)"]\\n\\tpushInsteadOf = file://\(h.remote)\\n' > "$HOME/.gitconfig"
        mkdir -p "$HOME/.config/git" && cp "$HOME/.gitconfig" "$HOME/.config/git/config"
        echo '# planted' > README.md
        echo ok > app.txt
        """.write(toFile: bin + "/cline", atomically: true, encoding: .utf8)
        chmod(bin + "/cline", 0o755)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["CLINE_CMD": bin + "/cline", "CLINE_ENABLED": "true", "GENERATORS": "cline"])
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        let home = h.workspace(id) + "/home/.gitconfig"
        #expect(FileManager.default.fileExists(atPath: home), "the agent planted nothing: the test proves nothing")
        let pushed = try await Git.run(["-C", h.remote, "log", "--format=%B", "main"])
        #expect(pushed.contains("Architex-Job: \(id)"), "the commit is on the job's remote")
        let diverted = try? await Git.run(["-C", elsewhere, "rev-parse", "--verify", "-q", "refs/heads/main"])
        #expect(diverted == nil || diverted!.isEmpty, "nothing reached the planted remote")
    }

    /// A read-write path the sandbox cannot open fails the job at once instead
    /// of being skipped (here a file:// repository that does not exist): the
    /// supervisor refuses it before the job runs, and the child itself, given
    /// such a ticket, fails instead of confining itself without it.
    @Test func aMissingReadWritePathFailsTheJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let missing = "file://" + h.root + "/missing.git"
        let id = try await h.seed(tinySpec, repo: missing)
        let r = try await h.agentRunner(["run", "--exit-when-idle"])
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(job["error"]?["code"]?.stringValue == "invalid_remote")
        #expect(job["error"]?["message"]?.stringValue?.contains("the local path does not exist") == true)
        let workspace = h.workspace("missing-rw")
        try FileManager.default.createDirectory(atPath: workspace, withIntermediateDirectories: true)
        var settings = try RunnerConfiguration(environment: h.environment()).child
        settings.network = .none
        let ticket = JobTicket(jobId: "missing-rw", attempt: 1, projectName: "Missing", repoURL: missing,
                               architectureSpec: tinySpec, workspace: workspace, settings: settings,
                               secrets: ChildSecrets(githubToken: nil))
        let child = try await JobChildRun.run(ticket, env: h.environment(),
                                              namespaces: Namespaces(network: true, uid: Int32(bitPattern: geteuid()),
                                                                     gid: Int32(bitPattern: getegid())))
        guard case .failed(let failure)? = child.events.last(where: { if case .failed = $0 { true } else { false } }) else {
            Issue.record("no failure event: \(child.stdout)")
            return
        }
        #expect(!failure.retryable)
        #expect(failure.message.contains("cannot grant read-write access to \(h.root)/missing.git"), "\(failure)")
    }
}
