#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import SupervisorKit

/// The doctor's containment checks (issue 12): whether this host can create
/// the namespaces a job child gets, the sandbox self-test run inside them,
/// the process limit, and JOB_NETWORK.
enum ContainmentChecks {
    /// The namespaces a job child gets under `config` (nil: none), spawned as
    /// JobLaunch spawns it: our own uid and gid become 0 inside.
    static func namespaces(_ config: RunnerConfiguration) -> Namespaces? {
        guard config.child.sandboxEnforced || config.child.network != .host else { return nil }
        return Namespaces(network: config.child.network != .host, uid: Int32(bitPattern: geteuid()),
                          gid: Int32(bitPattern: getegid()))
    }

    /// Runs the self-test in the job's namespaces and reports both; where the
    /// namespaces cannot be made, says why and how to fix it (the text a job
    /// gets as `sandbox_unavailable`) and runs the self-test without them.
    static func namespacesAndSelfTest(childPath: String, config: RunnerConfiguration,
                                      report: (String, String) -> Void) async {
        let sandboxFail = config.child.sandboxEnforced ? "fail" : "warn"
        guard let ns = namespaces(config) else {
            report("warn", "job namespaces: none (SANDBOX=off and JOB_NETWORK=host): job processes can outlive their job")
            let (state, line) = await SelfTestRun.run(childPath: childPath, config: config)
            report(state == "ok" ? "ok" : sandboxFail, line)
            return
        }
        let kinds = ns.network ? "user, PID and network" : "user and PID"
        do {
            let (state, line, selfTest) = try await SelfTestRun.run(childPath: childPath, config: config, namespaces: ns)
            let loopback = selfTest?["loopback"]?.stringValue
            if ns.network, let loopback, loopback != "up" {
                report(sandboxFail, "job namespaces: \(kinds) namespaces created, but loopback cannot be brought up inside "
                    + "(\(loopback)): the job child, root of its own user namespace, needs CAP_NET_ADMIN there; this "
                    + "process's capability bounding set must keep it")
            } else {
                report("ok", "job namespaces: \(kinds) namespaces created; the self-test ran inside them as init"
                    + (loopback == "up" ? " with its loopback up" : ""))
            }
            report(state == "ok" ? "ok" : sandboxFail, line)
            if config.child.sandboxEnforced {
                mountNamespace(selfTest, report: report)
            } else {
                report("warn", "mount namespace: none (SANDBOX=off): jobs see the host's /run and /tmp and every Unix "
                    + "socket in them")
            }
        } catch {
            report(sandboxFail, "job namespaces: " + JobLaunch.namespaceAdvice(error)
                + (config.child.sandboxEnforced ? "" : " (SANDBOX=off: jobs run without namespaces, each job warns)"))
            let (state, line) = await SelfTestRun.run(childPath: childPath, config: config)
            report(state == "ok" ? "ok" : sandboxFail, line + " (without namespaces)")
        }
    }

    /// The job's mount namespace, as the self-test in the job's namespaces made
    /// it: where it cannot be had, why, and what holds instead.
    static func mountNamespace(_ selfTest: JSONValue?, report: (String, String) -> Void) {
        let outcome = selfTest?["mountNamespace"]?.stringValue ?? "not reported by the self-test"
        if outcome == "made" {
            report("ok", "mount namespace: each job sees empty /run, /tmp and /dev/shm (no host socket) and its own "
                + "/proc (journal socket \(selfTest?["journalSocket"]?.stringValue ?? "?") inside)")
        } else {
            report("warn", "mount namespace: \(outcome). Jobs see the host's /run and /tmp; instead their agents may "
                + "not create Unix sockets (seccomp) and read only the job child's /proc/self. Fix: allow `mnt` "
                + "namespaces and the mount system call for agent-runner (Deploy/agent-runner.service)")
        }
    }

    /// JOB_MAX_PROCESSES: a pids cgroup per job, or RLIMIT_NPROC.
    static func processLimit(_ config: RunnerConfiguration, report: (String, String) -> Void) {
        let n = config.child.maxProcesses
        if let parent = JobCgroup.parent {
            report("ok", "process limit: a pids cgroup per job under \(parent) (pids.max = JOB_MAX_PROCESSES = \(n))")
        } else {
            report("warn", "process limit: no writable pids cgroup for this process; jobs fall back to RLIMIT_NPROC = "
                + "\(n) (counted per uid). The systemd unit's Delegate=pids gives the service one (a doctor run "
                + "from a shell is outside it)")
        }
    }

    /// JOB_NETWORK, loudly when it is `host`.
    static func network(_ config: RunnerConfiguration, report: (String, String) -> Void) {
        let extra = config.egressAllow.isEmpty ? "" : "; JOB_EGRESS_ALLOW: "
            + config.egressAllow.map(\.description).joined(separator: ", ")
        switch config.child.network {
        case .proxy:
            report("ok", "JOB_NETWORK=proxy: each job in its own network namespace; egress only through its proxy, "
                + "to the configured Gemini and Cline endpoints and the job's git remote host\(extra)")
        case .none:
            report("ok", "JOB_NETWORK=none: each job in its own network namespace with loopback only "
                + "(no Gemini, no Cline provider, no push over the network)")
        case .host:
            report("warn", "WARNING: JOB_NETWORK=host: jobs use this host's network UNFILTERED: the agent can reach "
                + "the database, internal services, the cloud metadata address and any host. Development only")
        }
    }
}
