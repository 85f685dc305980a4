#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import RunnerCore
import Testing

/// The shipped systemd unit, Deploy/agent-runner.service: the namespaces it
/// allows, its offline `systemd-analyze security` exposure, and a job and
/// `doctor` under its kernel-level restrictions. Where systemd is not PID 1
/// (CI, containers), Tests/Fixtures/systemd_sandbox.py applies the unit's
/// SystemCallFilter=, RestrictNamespaces=, RestrictAddressFamilies=,
/// CapabilityBoundingSet= and NoNewPrivileges= itself, as an unprivileged user.
@Suite struct DeployTests {
    static let repoRoot = TestEnv.repoRoot
    static let unit = repoRoot + "/Deploy/agent-runner.service"
    static let analyzer: String? = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { access($0, X_OK) == 0 }

    /// Every value the unit's [Service] section gives `key`, in order.
    static func values(_ key: String) throws -> [String] {
        var section = "", out: [String] = []
        for raw in try String(contentsOfFile: unit, encoding: .utf8).split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") { section = line; continue }
            guard section == "[Service]", !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            if line[..<eq] == key { out.append(String(line[line.index(after: eq)...])) }
        }
        return out
    }

    @Test func restrictNamespacesAllowsExactlyUserPidNetAndMntAndPidsAreDelegated() throws {
        let namespaces = try Self.values("RestrictNamespaces")
        #expect(namespaces.count == 1, "\(namespaces)")
        #expect(Set((namespaces.last ?? "").split(separator: " ").map(String.init)) == ["user", "pid", "net", "mnt"])
        #expect(try Self.values("Delegate") == ["pids"])
        #expect(try Self.values("CapabilityBoundingSet") == [""], "no capabilities for the service")
        // clone3 (the spawn) is in @process, which @system-service includes; unshare and setns stay refused.
        let filters = try Self.values("SystemCallFilter")
        #expect(filters.first == "@system-service")
        #expect(filters.contains { $0.hasPrefix("~") && $0.contains("@privileged") && $0.contains("@mount") })
    }

    @Test(.enabled(if: analyzer != nil, "systemd-analyze is not installed (Debian package systemd; scripts/bootstrap.sh installs it)"))
    func offlineExposureIsAtMostOnePointEight() async throws {
        let r = try await runProcess(Self.analyzer!, ["security", "--offline=true", "--no-pager", Self.unit])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let overall = try #require(lines.first { $0.contains("Overall exposure level for agent-runner.service:") },
                                   "\(r.stdout)\n\(r.stderr)")
        let figure = overall.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
        let exposure = try #require(figure, "\(overall)")
        // 1.5 before the job's mount namespace: `mnt` (0.1) and mount(2) (0.2) are allowed for it.
        #expect(exposure <= 1.8, "\(overall)")
        // systemd's own reading of RestrictNamespaces=: exactly user, pid, net and mnt may be created.
        for kind in ["user", "pid", "net", "mnt"] {
            #expect(lines.contains { $0.hasPrefix("✗ RestrictNamespaces=~\(kind) ") }, "\(kind) should be allowed")
        }
        for kind in ["uts", "cgroup", "ipc"] {
            #expect(lines.contains { $0.hasPrefix("✓ RestrictNamespaces=~\(kind) ") }, "\(kind) should be refused")
        }
    }

    /// Root (to drop the bounding set and become `nobody`), systemd-analyze
    /// (it expands the unit's system call groups) and binaries `nobody` can reach.
    static let canEmulate: Bool = {
        guard geteuid() == 0, analyzer != nil, access("/usr/bin/python3", X_OK) == 0 else { return false }
        var dir = TestEnv.binDir
        while dir.count > 1 {
            var st = stat()
            guard stat(dir, &st) == 0, st.st_mode & S_IXOTH != 0 else { return false }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return true
    }()

    /// The supervisor as the unit runs it, as far as seccomp, namespaces and
    /// capabilities go: a whole job (with its proxy, namespaces and
    /// confinement) must succeed, and doctor must find the namespaces.
    @Test(.enabled(if: canEmulate, "needs root, systemd-analyze, /usr/bin/python3 and a build directory others can traverse"))
    func aJobAndDoctorPassUnderTheUnitsSystemCallFilterAndNamespaceRules() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        _ = try await Git.run(["init", "-q", "--bare", "-b", "main", "--shared=0777", h.remote])
        for dir in [h.root, h.workdir] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o777)
        }
        _ = try await runProcess("/bin/chmod", ["-R", "a+rwX", h.remote])
        let id = try await h.seed(tinySpec)
        let fixture = TestEnv.fixtures + "/systemd_sandbox.py"
        let env = h.environment(["JOB_MAX_ATTEMPTS": "1", "KEEP_WORKSPACES": "never"])
        func underUnit(_ args: [String]) async throws -> ProcessResult {
            try await runProcess("/usr/bin/python3", [fixture, Self.unit, "--uid", "65534", "--",
                                                      TestEnv.binDir + "/agent-runner"] + args, env: env, cwd: h.root)
        }
        // The spawn falls back from clone3 (ENOSYS under RestrictNamespaces=) to clone,
        // and needs neither setresuid nor capset when the map names its own ids.
        do {
            let doctor = try await underUnit(["doctor"])
            #expect(doctor.stdout.contains("ok    job namespaces: user, PID and network namespaces created"),
                    "\(doctor.stdout)\n\(doctor.stderr)")
            #expect(doctor.stdout.contains("ok    mount namespace: each job sees empty /run, /tmp and /dev/shm"),
                    "\(doctor.stdout)")
            let run = try await underUnit(["run", "--exit-when-idle"])
            let job = try await h.job(id)
            #expect(job["status"]?.stringValue == "done", "\(job)\n\(run.stderr.suffix(3000))")
        }
    }

    /// Under a unit that does not allow the mount namespace (the unit before
    /// it did: no `mnt`, no `mount`), doctor says why, and the agent may not
    /// create a Unix socket: one the test listens on outside the workspace,
    /// visible without a mount namespace, stays unreached.
    @Test(.enabled(if: canEmulate, "needs root, systemd-analyze, /usr/bin/python3 and a build directory others can traverse"))
    func withoutAMountNamespaceDoctorSaysWhyAndTheAgentGetsNoUnixSocket() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        _ = try await Git.run(["init", "-q", "--bare", "-b", "main", "--shared=0777", h.remote])
        for dir in [h.root, h.workdir] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            chmod(dir, 0o777)
        }
        _ = try await runProcess("/bin/chmod", ["-R", "a+rwX", h.remote])
        let unit = h.root + "/no-mnt.service"
        try String(contentsOfFile: Self.unit, encoding: .utf8)
            .replacingOccurrences(of: "RestrictNamespaces=user pid net mnt", with: "RestrictNamespaces=user pid net")
            .replacingOccurrences(of: "landlock_restrict_self mount", with: "landlock_restrict_self")
            .write(toFile: unit, atomically: true, encoding: .utf8)
        let socketPath = h.root + "/host.sock"
        let listener = try UnixSocket.listen(socketPath, mode: 0o777)
        defer { close(listener) }
        let cline = try Containment.install("unix_socket_agent.py", in: h.root, prefix: "TARGET = \"\(socketPath)\"")
        chmod(h.root + "/bin", 0o755)
        let id = try await h.seed(tinySpec)
        let fixture = TestEnv.fixtures + "/systemd_sandbox.py"
        let env = h.environment(["JOB_MAX_ATTEMPTS": "1", "KEEP_WORKSPACES": "never", "CLINE_CMD": cline,
                                 "CLINE_ENABLED": "true", "GENERATORS": "cline"])
        func underUnit(_ args: [String]) async throws -> ProcessResult {
            try await runProcess("/usr/bin/python3", [fixture, unit, "--uid", "65534", "--",
                                                      TestEnv.binDir + "/agent-runner"] + args, env: env, cwd: h.root)
        }
        let doctor = try await underUnit(["doctor"])
        #expect(doctor.stdout.contains("warn  mount namespace: unavailable: unshare(CLONE_NEWNS)"),
                "\(doctor.stdout)\n\(doctor.stderr)")
        let run = try await underUnit(["run", "--exit-when-idle"])
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job)\n\(run.stderr.suffix(3000))")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.contains("NO mount namespace (unshare(CLONE_NEWNS)") }, "\(logs)")
        let sha = try #require(job["metadata"]?["commitSha"]?.stringValue)
        let probe = try await Git.run(["-C", h.remote, "show", "\(sha):unix.txt"])
        #expect(probe == "refused: Operation not permitted", "\(probe)")
        #expect(!Containment.pendingConnection(listener), "the host socket was reached")
    }
}
