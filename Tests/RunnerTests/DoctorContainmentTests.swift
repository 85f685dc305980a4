#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `agent-runner doctor`'s containment checks against the real host: the job
/// namespaces (the self-test runs inside them), the process limit and
/// JOB_NETWORK; and, in a user namespace whose `user.max_user_namespaces` is
/// 0, the cause-and-fix text a job gets as `sandbox_unavailable`.
@Suite struct DoctorContainmentTests {
    func lines(_ r: ProcessResult) -> [String] { r.stdout.split(separator: "\n").map(String.init) }

    @Test func doctorCreatesTheJobNamespacesAndReportsTheLimitsAndTheNetwork() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let r = try await h.agentRunner(["doctor"])
        let out = lines(r)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(out.contains("ok    job namespaces: user, PID and network namespaces created; the self-test ran inside them "
                             + "as init with its loopback up"), "\(out)")
        #expect(out.contains("ok    " + "sandbox self-test: writes outside the workspace and namespace creation refused"))
        // Checked against the machine, not against a copy of the doctor's
        // reasoning: the cgroup it names must take a job's cgroup with a
        // pids.max; a warning must mean that this process can make none.
        let okPrefix = "ok    process limit: a pids cgroup per job under "
        if let line = out.first(where: { $0.hasPrefix(okPrefix) }) {
            let parent = String(line.dropFirst(okPrefix.count).prefix { $0 != " " })
            #expect(line == okPrefix + parent + " (pids.max = JOB_MAX_PROCESSES = 256)", "\(line)")
            #expect(Self.takesAPidsCgroup(parent), "\(parent) does not take a job's pids cgroup: \(out)")
        } else {
            #expect(out.contains { $0.hasPrefix("warn  process limit: no writable pids cgroup for this process; "
                                                + "jobs fall back to RLIMIT_NPROC = 256") }, "\(out)")
            #expect(Self.ownPidsCgroups.allSatisfy { !Self.takesAPidsCgroup($0) },
                    "this process can make a pids cgroup under \(Self.ownPidsCgroups), yet the doctor warns: \(out)")
        }
        #expect(out.contains { $0.hasPrefix("ok    JOB_NETWORK=proxy: ") }, "\(out)")

        let host = try await h.agentRunner(["doctor"], env: ["JOB_NETWORK": "host", "JOB_MAX_PROCESSES": "64"])
        let hostOut = lines(host)
        #expect(hostOut.contains { $0.hasPrefix("ok    job namespaces: user and PID namespaces created") }, "\(hostOut)")
        #expect(hostOut.contains { $0.hasPrefix("warn  WARNING: JOB_NETWORK=host: ") && $0.contains("UNFILTERED") })
        #expect(hostOut.contains { $0.contains("process limit") && $0.contains("64") })
    }

    /// Whether a cgroup with its own `pids.max` can be made under `dir`
    /// (made, its limit written and read back, and removed again).
    static func takesAPidsCgroup(_ dir: String) -> Bool {
        guard dir.hasPrefix("/sys/fs/cgroup/") else { return false }
        let probe = dir + "/doctor-test-probe-\(getpid())"
        guard mkdir(probe, 0o755) == 0 else { return false }
        defer { rmdir(probe) }
        let fd = open(probe + "/pids.max", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        let wrote = write(fd, "7\n", 2) == 2
        close(fd)
        return wrote && (try? String(contentsOfFile: probe + "/pids.max", encoding: .utf8)) == "7\n"
    }

    /// This process's own places in the pids hierarchies: its cgroup v1
    /// pids cgroup, and its cgroup v2 cgroup when that is a service's (the
    /// only kind a doctor may reshape).
    static let ownPidsCgroups: [String] = {
        let lines = ((try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "").split(separator: "\n")
        var dirs: [String] = []
        for line in lines {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard f.count == 3 else { continue }
            if f[1].split(separator: ",").contains("pids") { dirs.append("/sys/fs/cgroup/pids" + (f[2] == "/" ? "" : f[2])) }
            if f[0] == "0", f[2].hasSuffix(".service") { dirs.append("/sys/fs/cgroup" + f[2]) }
        }
        return dirs
    }()

    /// Whether this host lets root create a user namespace and lower its
    /// user.max_user_namespaces inside (kernels since 4.9).
    static let canRefuse: Bool = {
        access("/usr/bin/unshare", X_OK) == 0 && geteuid() == 0
            && system("/usr/bin/unshare --user --map-root-user true >/dev/null 2>&1") == 0
    }()

    @Test(.enabled(if: canRefuse, "needs root and /usr/bin/unshare with user namespaces"))
    func doctorNamesTheCauseAndTheFixWhereNamespacesAreRefused() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        // A user namespace of its own whose limit for further user namespaces is 0:
        // the host's setting stays as it is.
        let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""
        func doctor(_ env: [String: String]) async throws -> ProcessResult {
            try await runProcess("/usr/bin/unshare", ["--user", "--map-root-user", "/bin/sh", "-c", script, "sh",
                                                      TestEnv.binDir + "/agent-runner", "doctor"],
                                 env: h.environment(env), cwd: h.root)
        }
        let enforced = try await doctor([:])
        let out = lines(enforced)
        #expect(enforced.status == 1, "\(enforced.stdout)\n\(enforced.stderr)")
        let line = try #require(out.first { $0.contains("job namespaces") }, "\(out)")
        #expect(line.hasPrefix("fail  job namespaces: cannot create the job's user, PID and network namespaces ("), "\(line)")
        #expect(line.contains("No space left on device"), "the cause: \(line)")
        for fix in ["RestrictNamespaces=user pid net", "user.max_user_namespaces", "apparmor_restrict_unprivileged_userns"] {
            #expect(line.contains(fix), "the fix should name \(fix): \(line)")
        }
        #expect(out.contains { $0.hasPrefix("ok    sandbox self-test: ") && $0.hasSuffix("(without namespaces)") }, "\(out)")

        let off = try await doctor(["SANDBOX": "off"])
        #expect(lines(off).contains { $0.hasPrefix("warn  job namespaces: cannot create") && $0.hasSuffix("each job warns)") },
                "\(off.stdout)")
    }
}
