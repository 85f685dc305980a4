import Foundation
@testable import ChildGeneration
import JobStore
import RunnerCore
import Testing

/// Hostile agents (fake `cline` scripts) and hostile job children, run by the
/// real supervisor and the real child inside the real sandbox. Every hostile
/// job is followed by a normal one that must still succeed.
@Suite(.serialized) struct SandboxTests {
    /// The fake cline: runs `hostile` (then exits with its status) when the
    /// job's spec is named "Hostile", else writes a small valid tree.
    func fakeCline(_ h: Harness, hostile: String, normal: String = "") throws -> String {
        let dir = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/cline"
        try """
        #!/bin/sh
        if grep -q Hostile ../input/architecture_spec.json; then
        \(hostile)
        exit $?
        fi
        \(normal)
        echo '# normal job' > README.md && echo ok > ok.txt
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    static let hostileSpec: JSONValue = [
        "name": "Hostile", "nodes": [["id": "a", "type": "backend", "data": ["label": "API", "framework": "express"]]],
        "edges": [],
    ]

    /// Seeds a hostile job then a normal one (lower priority), runs one
    /// supervisor with one slot until idle, and returns both job documents.
    func hostileThenNormal(_ h: Harness, cline: String, env extra: [String: String] = [:],
                           timeout: Double = 120) async throws -> (hostile: JSONValue, id: String) {
        try await h.makeRemote()
        let p1 = try await h.store.insertProject(name: "hostile", repoURL: "file://" + h.remote)
        let hostile = try await h.store.insertJob(projectId: p1, spec: Self.hostileSpec, priority: 1)
        let p2 = try await h.store.insertProject(name: "normal", repoURL: "file://" + h.remote)
        let normal = try await h.store.insertJob(projectId: p2, spec: tinySpec, priority: 0)
        let env = ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline,gemini,scaffold",
                   "RUNNER_CONCURRENCY": "1"].merging(extra) { $1 }
        let run = try await h.agentRunner(["run", "--exit-when-idle"], env: env, timeout: timeout)
        #expect(run.status == 0, "the supervisor must survive: \(run.stderr.suffix(2000))")
        let next = try await h.job(normal)
        #expect(next["status"]?.stringValue == "done", "the next job must succeed: \(logs(next))")
        #expect(next["metadata"]?["generator"]?.stringValue == "cline")
        return (try await h.job(hostile), hostile)
    }

    func logs(_ job: JSONValue) -> [String] { job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }

    /// Asserts the job failed (not retried, no fallback) with `code`, and returns its message.
    @discardableResult
    func expectFailed(_ job: JSONValue, _ code: String) -> String {
        #expect(job["status"]?.stringValue == "failed", "\(logs(job))")
        #expect(job["error"]?["code"]?.stringValue == code, "\(job["error"]?.jsonString ?? "no error")")
        #expect(!logs(job).contains { $0.hasPrefix("generator scaffold") }, "a limit must not fall back to the next generator")
        return job["error"]?["message"]?.stringValue ?? ""
    }

    // MARK: resource limits

    /// The spinning agents yield to the other test suites running in parallel
    /// (CPU time, which RLIMIT_CPU counts, is the same at any priority).
    static let lowPriority = "renice -n 19 -p $$ > /dev/null"

    @Test func cpuSpinIsStoppedBySIGXCPUAndNamesTheLimit() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try fakeCline(h, hostile: "\(Self.lowPriority)\nwhile :; do :; done")
        let (job, _) = try await hostileThenNormal(h, cline: cline, env: ["JOB_CPU_SECONDS": "2"])
        let message = expectFailed(job, "resource_limit")
        #expect(message == "cline: CPU limit JOB_CPU_SECONDS=2 exceeded (SIGXCPU)")
    }

    @Test func cpuSpinIgnoringSIGXCPUIsKilledAtTheHardLimit() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try fakeCline(h, hostile: "\(Self.lowPriority)\ntrap '' XCPU\nwhile :; do :; done")
        let (job, _) = try await hostileThenNormal(h, cline: cline, env: ["JOB_CPU_SECONDS": "2"])
        let message = expectFailed(job, "resource_limit")
        #expect(message.hasPrefix("cline: CPU limit JOB_CPU_SECONDS=2 exceeded (SIGKILL at the hard limit"), "\(message)")
    }

    /// JOB_MAX_TOTAL_MB=1 makes RLIMIT_FSIZE 65 MB. As the script's last
    /// command, head's SIGXFSZ death is the shell's exit status 153; exec'd,
    /// it is the agent's own signal.
    @Test(arguments: ["head -c 70M /dev/zero > big", "exec head -c 70M /dev/zero > big"])
    func hugeFileIsStoppedByTheFileSizeLimit(_ command: String) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try fakeCline(h, hostile: command)
        let (job, id) = try await hostileThenNormal(h, cline: cline, env: ["JOB_MAX_TOTAL_MB": "1"])
        let message = expectFailed(job, "resource_limit")
        #expect(message.hasPrefix("cline: file size limit exceeded: a file reached RLIMIT_FSIZE = JOB_MAX_TOTAL_MB+64 = 65 MB"))
        #expect(message.hasSuffix(command.hasPrefix("exec") ? "(SIGXFSZ)" : "(exit status 153: a process killed by SIGXFSZ)"))
        var st = stat()
        #expect(stat(h.workspace(id) + "/repo/big", &st) == 0 && st.st_size == 65 << 20, "the write stops at RLIMIT_FSIZE")
    }

    /// Heuristic: RLIMIT_DATA makes the allocation fail; Python raises
    /// MemoryError and exits 1; the child reads the marker on stderr.
    @Test func hugeAllocationFailsAsTheMemoryLimit() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try fakeCline(h, hostile: #"python3 -c "x = bytearray(3000 * 1024 * 1024)""#)
        let (job, _) = try await hostileThenNormal(h, cline: cline, env: ["JOB_MEMORY_MB": "256"])
        let message = expectFailed(job, "resource_limit")
        #expect(message == #"cline: memory limit JOB_MEMORY_MB=256 exceeded (the agent failed with "MemoryError" on stderr)"#)
        #expect(logs(job).contains { $0.hasPrefix("cline stderr: MemoryError") })
    }

    @Test func limitMappingAndMemoryMarkers() throws {
        var env = Harness.minimalConfig
        env["JOB_CPU_SECONDS"] = "5"
        let settings = try RunnerConfiguration(environment: env).child
        func code(_ s: AgentProcess.Status, cpu: Double = 0, memory: String? = nil) -> String? {
            ClineGenerator.limitFailure(s, cpuSeconds: cpu, memoryError: memory, settings: settings)?.code.rawValue
        }
        #expect(code(.signaled(SIGKILL), cpu: 15) == "resource_limit")
        #expect(code(.signaled(SIGKILL), cpu: 1) == nil, "a SIGKILL below the CPU limit is not the CPU limit")
        #expect(code(.exited(152)) == "resource_limit" && code(.exited(153)) == "resource_limit")
        #expect(code(.signaled(SIGSYS)) == "sandbox_violation" && code(.exited(159)) == "sandbox_violation")
        #expect(code(.exited(1)) == nil && code(.exited(0), memory: "MemoryError") == nil)
        #expect(code(.signaled(SIGABRT), memory: "out of memory") == "resource_limit")
        #expect(ClineGenerator.memoryErrorMarker(in: "FATAL ERROR: Reached heap limit - JavaScript heap out of memory") != nil)
        #expect(ClineGenerator.memoryErrorMarker(in: "cp: cannot allocate memory") != nil)
        #expect(ClineGenerator.memoryErrorMarker(in: "all good") == nil)
    }

    // MARK: seccomp

    /// The agent tries namespace creation, mount, ptrace, clone3 and
    /// personality; each is refused (EPERM; clone3 ENOSYS so glibc falls back
    /// to clone) and the job still succeeds. The tests run as root, so without
    /// the filter unshare, ptrace of its own child, clone3 (EINVAL) and
    /// personality would not be refused (checked by disabling the filter);
    /// mount and ptrace of the parent are refused by Landlock as well.
    @Test func deniedSystemCallsFailWithEPERMAndTheJobGoesOn() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try fakeCline(h, hostile: "exit 0", normal: #"""
        mkdir m
        python3 - > probe.txt <<'PY'
        import ctypes, errno, os, subprocess
        libc = ctypes.CDLL(None, use_errno=True)
        def probe(name, call):
            ctypes.set_errno(0)
            r = call()
            print(name, "allowed" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), "?"), flush=True)
        probe("unshare(CLONE_NEWUSER)", lambda: libc.unshare(0x10000000))
        probe("mount", lambda: libc.mount(b"none", b"m", b"tmpfs", 0, None))
        child = subprocess.Popen(["sleep", "30"])
        probe("ptrace(ATTACH child)", lambda: libc.syscall(101, 16, child.pid, 0, 0))
        child.kill(); child.wait()
        probe("ptrace(ATTACH parent)", lambda: libc.syscall(101, 16, os.getppid(), 0, 0))
        probe("clone3", lambda: libc.syscall(435, 0, 0))
        probe("personality(ADDR_NO_RANDOMIZE)", lambda: libc.personality(0x0040000))
        PY
        unshare -U true >> probe.txt 2>&1; echo "unshare -U exit $?" >> probe.txt
        mount -t tmpfs none m >> probe.txt 2>&1; echo "mount exit $?" >> probe.txt
        """#)
        try await h.makeRemote()
        let id = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline"])
        #expect(run.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        let probe = try await Git.run(["-C", h.remote, "show", "main:probe.txt"])
        for line in ["unshare(CLONE_NEWUSER) EPERM", "mount EPERM", "ptrace(ATTACH child) EPERM",
                     "ptrace(ATTACH parent) EPERM", "clone3 ENOSYS", "personality(ADDR_NO_RANDOMIZE) EPERM", "unshare -U exit 1", "mount exit 32"] {
            #expect(probe.contains(line), "\(line) missing from:\n\(probe)")
        }
        #expect(probe.contains("unshare failed: Operation not permitted"), "\(probe)")
        #expect(!probe.contains("allowed"), "\(probe)")
    }

    /// A real other-architecture system call from the agent: i386 `int 0x80`
    /// (machine code run from an executable mapping through ctypes) and an x32
    /// call number. The filter's bad-arch action kills the process with SIGSYS.
    @Test(arguments: ["i386", "x32"])
    func foreignArchitectureCallKillsTheAgentWithSIGSYS(_ arch: String) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let script = arch == "i386" ? """
            import ctypes, mmap
            m = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            m.write(b"\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3")  # mov eax, 20 (getpid); int 0x80; ret
            print("int 0x80 returned", ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))())
            """ : """
            import ctypes
            print("x32 getpid returned", ctypes.CDLL(None).syscall(0x40000000 + 39))
            """
        let cline = try fakeCline(h, hostile: "exec python3 - <<'PY'\n\(script)\nPY")
        let (job, _) = try await hostileThenNormal(h, cline: cline)
        let message = expectFailed(job, "sandbox_violation")
        #expect(message.hasPrefix("cline: killed by SIGSYS"), "\(message)")
        #expect(!logs(job).contains { $0.contains("returned") }, "the call must not return")
    }

    /// The supervisor's mapping when the job child itself dies by a signal.
    @Test(arguments: [("SYS", "sandbox_violation", "SIGSYS"), ("XCPU", "resource_limit", "JOB_CPU_SECONDS=1800"),
                      ("XFSZ", "resource_limit", "RLIMIT_FSIZE = JOB_MAX_TOTAL_MB+64 = 114 MB")])
    func childKilledBySignalIsNamed(_ signal: String, _ code: String, _ words: String) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let child = h.root + "/fake-job-child"
        // It reads its ticket line, then signals itself. Without namespaces: as init
        // of a PID namespace it would be immune to its own signals.
        try "#!/bin/sh\nulimit -c 0\nhead -n 1 > /dev/null\nkill -\(signal) $$\nsleep 5\n"
            .write(toFile: child, atomically: true, encoding: .utf8)
        chmod(child, 0o755)
        let id = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: ["AGENT_RUNNER_JOB_PATH": child, "SANDBOX": "off", "JOB_NETWORK": "host"])
        #expect(run.status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == code)
        #expect(job["error"]?["message"]?.stringValue?.contains(words) == true, "\(job["error"]?.jsonString ?? "")")
    }

    // MARK: SANDBOX=off, JOB_UID_RANGE, doctor

    @Test func sandboxOffWarnsInEveryJobLog() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let off = [try await h.seed(tinySpec), try await h.seed(tinySpec, project: "second")]
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["SANDBOX": "off"]).status == 0)
        let on = try await h.seed(tinySpec, project: "third")
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["SANDBOX": "enforce"]).status == 0)
        for id in off {
            let lines = logs(try await h.job(id))
            #expect(lines.contains { $0.hasPrefix("WARNING: SANDBOX=off") && $0.contains("UNCONFINED") }, "\(lines)")
        }
        let lines = logs(try await h.job(on))
        #expect(!lines.contains { $0.contains("UNCONFINED") })
        #expect(lines.contains { $0.hasPrefix("sandbox: landlock ABI") })
    }

    @Test func uidRangeIsValidated() async throws {
        for bad in ["61000", "999-2000", "62000-61000", "61000-2147483648", "a-b", "61000-", "60000-70000", " 1000-2000"] {
            var env = Harness.minimalConfig
            env["JOB_UID_RANGE"] = bad
            #expect(throws: ConfigurationError.self, "\(bad)") { try RunnerConfiguration(environment: env) }
            do { _ = try RunnerConfiguration(environment: env) } catch let e as ConfigurationError {
                #expect(e.variable == "JOB_UID_RANGE")
            }
        }
        var env = Harness.minimalConfig
        env["JOB_UID_RANGE"] = "61000-61999"
        #expect(try RunnerConfiguration(environment: env).jobUIDRange == 61000...61999)
        let h = try Harness()
        defer { h.cleanup() }
        let run = try await h.agentRunner(["run", "--exit-when-idle"], env: ["JOB_UID_RANGE": "5-10"])
        #expect(run.status == 78 && run.stderr.contains("JOB_UID_RANGE"))
    }

    @Test func doctorReportsTheConfinementAndItsSelfTest() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let run = try await h.agentRunner(["doctor"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("ok") && $0.contains("Landlock ABI") })
        #expect(lines.contains { $0.hasPrefix("ok") && $0.contains("seccomp: filters supported") })
        #expect(lines.contains { $0.hasPrefix("ok ") && $0.hasSuffix("sandbox self-test: writes outside the workspace and namespace creation refused") },
                "\(lines)")
        // Made by the self-test in the job's namespaces: no host socket path, its own /proc.
        #expect(lines.contains { $0.hasPrefix("ok    mount namespace: each job sees empty /run, /tmp and /dev/shm") },
                "\(lines)")
        // The self-test itself, by hand: one JSON line, nothing left behind.
        let tmp = h.root + "/selftest-tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let selfTest = try await runProcess(TestEnv.binDir + "/agent-runner-job", ["--self-test"], env: ["TMPDIR": tmp])
        #expect(selfTest.status == 0, "\(selfTest.stdout)")
        let report = try JSONValue.parse(selfTest.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["ok"]?.boolValue == true)
        #expect(report["writeOutside"]?.stringValue == "refused (Permission denied)")
        #expect(report["unshareUserNamespace"]?.stringValue == "refused (Operation not permitted)")
        #expect(report["seccompMode"]?.intValue == 2)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty)
    }
}

extension Harness {
    /// The smallest valid configuration, for validation tests.
    static let minimalConfig = ["MONGODB_URI": "mongodb://127.0.0.1:1/"]
}
