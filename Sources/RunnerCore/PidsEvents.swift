import Foundation

/// A pids cgroup's `pids.events` file, read by the supervisor (the job's
/// cgroup, after the child) and by the job child (after its agent phase):
/// both must count refused forks the same way.
public enum PidsEvents {
    /// How many forks `pids.max` refused: the `max` line's count (0 when absent).
    public static func refusedForks(in text: String) -> Int {
        text.split(separator: "\n").first { $0.hasPrefix("max ") }.flatMap { Int($0.dropFirst(4)) } ?? 0
    }

    /// The refused forks counted in the file at `path` (0 when it cannot be read).
    public static func refusedForks(atPath path: String) -> Int {
        refusedForks(in: (try? String(contentsOfFile: path, encoding: .utf8)) ?? "")
    }
}
