#if canImport(Glibc)
import Glibc
#endif

/// Tells the job child whether the supervisor that spawned it still lives.
/// The supervisor holds the child's stdin open for the whole job, so EOF on
/// stdin means it died (or gave the job up); `ChildInput` then marks the
/// child orphaned. An orphaned child stops before committing or pushing, so
/// a job reclaimed by another runner is never published twice by a ghost.
public enum ParentWatch {
    private static let flag = Locked(false)

    /// Records that the supervisor is gone.
    public static func markOrphaned() { flag.withLock { $0 = true } }

    /// Whether the supervisor is gone.
    public static var orphaned: Bool { flag.withLock { $0 } }
}
