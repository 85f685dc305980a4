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
        if let parent = Self.expectedJobCgroupParent {
            #expect(out.contains("ok    process limit: a pids cgroup per job under \(parent) (pids.max = JOB_MAX_PROCESSES = 256)"),
                    "this machine has a writable pids cgroup: \(out)")
        } else {
            #expect(out.contains { $0.hasPrefix("warn  process limit: no writable pids cgroup for this process; "
                                                + "jobs fall back to RLIMIT_NPROC = 256") },
                    "this machine has no writable pids cgroup: \(out)")
        }
        #expect(out.contains { $0.hasPrefix("ok    JOB_NETWORK=proxy: ") }, "\(out)")

        let host = try await h.agentRunner(["doctor"], env: ["JOB_NETWORK": "host", "JOB_MAX_PROCESSES": "64"])
        let hostOut = lines(host)
        #expect(hostOut.contains { $0.hasPrefix("ok    job namespaces: user and PID namespaces created") }, "\(hostOut)")
        #expect(hostOut.contains { $0.hasPrefix("warn  WARNING: JOB_NETWORK=host: ") && $0.contains("UNFILTERED") })
        #expect(hostOut.contains { $0.contains("process limit") && $0.contains("64") })
    }

    /// Where this machine must put job cgroups, worked out here from
    /// /proc/self/cgroup (the doctor inherits the test's cgroup) without
    /// changing anything: a systemd service's own delegated cgroup v2 with
    /// the pids controller (`<own>/jobs`), else a writable cgroup v1 pids
    /// directory (`<own>/agent-runner-jobs`); nil: neither, the warning.
    static let expectedJobCgroupParent: String? = {
        let lines = ((try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "").split(separator: "\n")
        if let v2 = lines.first(where: { $0.hasPrefix("0::") }),
           let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8),
           controllers.split(whereSeparator: \.isWhitespace).contains("pids") {
            let own = "/sys/fs/cgroup" + v2.dropFirst(3)
            if own.hasSuffix(".service"), access(own, W_OK) == 0 { return own + "/jobs" }
        }
        if let v1 = lines.first(where: { $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains("pids") == true }) {
            let rel = v1.split(separator: ":", maxSplits: 2).last.map(String.init) ?? "/"
            let own = "/sys/fs/cgroup/pids" + (rel == "/" ? "" : rel)
            if access(own + "/agent-runner-jobs", W_OK) == 0 || access(own, W_OK) == 0 { return own + "/agent-runner-jobs" }
        }
        return nil
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
