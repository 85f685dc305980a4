#if canImport(Glibc)
import Glibc
#endif

/// Tells the job child whether the supervisor that spawned it still lives:
/// when it dies the child is re-parented and `getppid()` changes. An orphaned
/// child stops before committing or pushing, so a job reclaimed by another
/// runner is never published twice by a ghost.
public enum ParentWatch {
    nonisolated(unsafe) private static var original: pid_t = 0

    /// Records the parent; call once at start, before anything else.
    public static func start() { original = getppid() }

    /// Whether the original parent is gone.
    public static var orphaned: Bool { original != 0 && getppid() != original }
}
