#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// The processes of a running job besides its child, as the supervisor sees
/// them before it hands over a push token (blocking: /proc and cgroupfs reads).
///
/// - With the job's pids cgroup: its members other than the child.
/// - Without one (no writable cgroup, SANDBOX=off): every process descended
///   from the child, by the parent links in /proc. That is every process of
///   the job: the child is init of its PID namespace, where an orphan goes to
///   init, or, without namespaces, a child subreaper, where an orphan goes to
///   the nearest subreaper above it; either way it stays below the child,
///   however it detached (double fork, setsid).
///
/// Nil when that cannot be told (the list cannot be read, or it does not
/// even show the child): the token is then withheld, never handed over blind.
enum JobProcesses {
    static func others(child: pid_t, cgroup: JobCgroup?, proc: String = "/proc") -> [pid_t]? {
        if let cgroup {
            let members = cgroup.members()
            guard members.contains(child) else { return nil }
            return members.filter { $0 != child }
        }
        // Twice, and both must agree on none: a process that forked while the
        // first pass read /proc and whose parent then exited shows up, moved
        // under the child, in the second.
        guard let first = descendants(of: child, proc: proc) else { return nil }
        guard first.isEmpty else { return first }
        return descendants(of: child, proc: proc)
    }

    /// The pids whose chain of parents reaches `root` (not `root` itself), or
    /// nil when /proc cannot be listed or does not show `root`.
    static func descendants(of root: pid_t, proc: String = "/proc") -> [pid_t]? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: proc) else { return nil }
        var parent: [pid_t: pid_t] = [:]
        for name in entries {
            guard let pid = pid_t(name), let ppid = parentPid(pid, proc: proc) else { continue }
            parent[pid] = ppid
        }
        guard parent[root] != nil else { return nil }
        return parent.keys.filter { pid in
            var p = pid, steps = 0
            while let up = parent[p], up > 0, steps < 4096 {
                if up == root { return true }
                p = up
                steps += 1
            }
            return false
        }.sorted()
    }

    /// The parent pid from /proc/<pid>/stat (after the command name, which
    /// may hold spaces and parentheses: the last `)` ends it).
    static func parentPid(_ pid: pid_t, proc: String) -> pid_t? {
        guard let stat = try? String(contentsOfFile: "\(proc)/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }
}
