#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// One job's pids cgroup: JOB_MAX_PROCESSES as `pids.max`, entered by the job
/// child before it execs (so nothing it starts is outside), removed when the
/// job ends. Uses a delegated cgroup v2 subtree where systemd gives one
/// (`Delegate=yes`), else the cgroup v1 pids hierarchy when it is writable.
/// Nil where neither exists; the child then falls back to RLIMIT_NPROC.
public struct JobCgroup: Sendable {
    /// The job's cgroup directory.
    public let path: String

    /// `cgroup.procs`, for the spawn.
    public var procs: String { path + "/cgroup.procs" }
    /// `pids.events`, whose `max` line counts refused forks.
    public var events: String { path + "/pids.events" }

    /// Creates the job's cgroup with `pids.max` = `maxProcesses`, or returns nil.
    public static func create(name: String, maxProcesses: Int) -> JobCgroup? {
        guard let parent = parentDirectory() else { return nil }
        let path = parent + "/" + name
        rmdir(path) // a stale one from a crash
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { return nil }
        guard write(path + "/pids.max", "\(maxProcesses)\n") else { rmdir(path); return nil }
        return JobCgroup(path: path)
    }

    /// The pids of the processes in the cgroup (thread-group ids).
    public func members() -> [pid_t] {
        ((try? String(contentsOfFile: procs, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// How many forks `pids.max` refused.
    public func refusedForks() -> Int { PidsEvents.refusedForks(atPath: events) }

    /// Kills whatever is left (cgroup.kill on v2, else each member) and removes the cgroup.
    public func remove() {
        for _ in 0..<50 {
            if !Self.write(path + "/cgroup.kill", "1\n") {
                for pid in members() { kill(pid, SIGKILL) }
            }
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(20_000)
        }
    }

    /// Where job cgroups go, found once: our own cgroup v2 when it is
    /// delegated to us with the pids controller, else our v1 pids cgroup.
    public static let parent: String? = findParent()
    static func parentDirectory() -> String? { parent }

    private static func findParent() -> String? {
        let lines = ((try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "").split(separator: "\n")
        // cgroup v2 (unified at /sys/fs/cgroup): needs the pids controller and a writable directory.
        if let v2 = lines.first(where: { $0.hasPrefix("0::") }),
           let controllers = try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.controllers", encoding: .utf8),
           controllers.split(separator: " ").contains(where: { $0.trimmingCharacters(in: .whitespacesAndNewlines) == "pids" }) {
            let own = "/sys/fs/cgroup" + String(v2.dropFirst(3))
            // Only a service's own cgroup (systemd Delegate=): never a login
            // session's scope, which a shell's `doctor` or `run` would reshape.
            if own.hasSuffix(".service"), access(own, W_OK) == 0, let jobs = delegatedV2(own) { return jobs }
        }
        // cgroup v1 pids hierarchy.
        if let v1 = lines.first(where: { $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains("pids") == true }) {
            let rel = v1.split(separator: ":", maxSplits: 2).last.map(String.init) ?? "/"
            let own = "/sys/fs/cgroup/pids" + (rel == "/" ? "" : rel)
            let jobs = own + "/agent-runner-jobs"
            if mkdir(jobs, 0o755) == 0 || errno == EEXIST, access(jobs, W_OK) == 0 { return jobs }
        }
        return nil
    }

    /// In a delegated v2 cgroup, processes may not sit beside child cgroups
    /// that use controllers: move ourselves into `supervisor/`, enable pids
    /// for the children, and put jobs in `jobs/`.
    private static func delegatedV2(_ own: String) -> String? {
        let me = own + "/supervisor", jobs = own + "/jobs"
        guard mkdir(me, 0o755) == 0 || errno == EEXIST,
              write(me + "/cgroup.procs", "0\n"),
              write(own + "/cgroup.subtree_control", "+pids\n"),
              mkdir(jobs, 0o755) == 0 || errno == EEXIST,
              write(jobs + "/cgroup.subtree_control", "+pids\n") else { return nil }
        return jobs
    }

    @discardableResult
    static func write(_ path: String, _ text: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return (try? writeAll(fd, Array(text.utf8))) != nil
    }
}
