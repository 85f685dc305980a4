#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// The job's own mount namespace, made by the job child before it drops its
/// capabilities (it is root of its own user namespace and init of its own PID
/// namespace): every mount a recursive slave of the host's, an empty private
/// tmpfs over each folder where host Unix sockets live (`masked`), the paths
/// the job needs under them bound back at their own names, and a fresh procfs
/// on /proc that shows only the job's processes (so `/proc/self` is the
/// reader's own entry). Landlock stays the second layer.
public enum MountNamespace {
    /// The folders covered by an empty tmpfs: /run and /var/run (systemd,
    /// D-Bus, journald, database sockets), /tmp (X11 and other sockets) and
    /// /dev/shm. A folder that is a symbolic link (/var/run → /run) is
    /// covered through its target.
    public static let masked = ["/run", "/var/run", "/tmp", "/dev/shm"]

    /// The size of each tmpfs: it only holds the folders of bound-back paths
    /// (Landlock gives the job no write access to it).
    static let tmpfsKiB: UInt32 = 1024

    /// How the namespace came out.
    public struct Outcome: Sendable, Equatable {
        /// The masked folders are covered: no host socket path exists inside.
        public var privateFolders: Bool
        /// /proc is a fresh procfs of the job's PID namespace.
        public var ownProc: Bool
        /// Why either is missing (for the log and doctor); nil when both hold.
        public var problem: String?

        static func unavailable(_ why: String) -> Outcome { Outcome(privateFolders: false, ownProc: false, problem: why) }
        /// Both parts made.
        public var isComplete: Bool { privateFolders && ownProc }
    }

    /// Makes the namespace, keeping each path of `keep` (and what is beneath
    /// it) reachable at its own name. Call it as root of a user namespace
    /// that owns the caller's PID namespace (the job child, or a process it
    /// forked). A refusal that changes nothing is reported in the outcome:
    /// the kernel or a service's filter refusing the namespace or the first
    /// tmpfs (the job's view is then the host's), or the procfs (refused
    /// where the host's /proc is partly covered, as under systemd's
    /// ProtectKernelTunables=; the host's /proc then stays). A failure half-way
    /// throws `sandbox_unavailable`. Ends with the working directory at `/`
    /// (an old one under a covered folder would reach the host's through `..`).
    public static func make(keeping keep: [String]) throws -> Outcome {
        let r = cshims_unshare_mount_namespace()
        if r != 0 { return .unavailable("unshare(CLONE_NEWNS) or making the mounts private: \(Errno(-r))") }
        // Opened in the new namespace (a bind's source must be one of its mounts), before anything covers them.
        let binds = try bindBacks(keep)
        defer { for b in binds { close(b.fd) } }
        do {
            for (i, dir) in coveredFolders().enumerated() {
                let mounted = cshims_mount_tmpfs(dir, dir == "/tmp" || dir == "/dev/shm" ? 0o1777 : 0o755, tmpfsKiB)
                // The first mount decides: refused, nothing has changed yet.
                if i == 0, mounted != 0 { return .unavailable("mounting a tmpfs on \(dir): \(Errno(-mounted))") }
                try checkingNegativeErrno("mount a tmpfs on \(dir)") { mounted }
                for b in binds where b.target == dir || b.target.hasPrefix(dir + "/") { try bind(b) }
            }
            try checkingNegativeErrno("chdir /") { chdir("/") == 0 ? 0 : -errno }
        } catch {
            throw JobFailure(.sandboxUnavailable, "the job's mount namespace is half made: \(error)")
        }
        let proc = cshims_mount_proc("/proc")
        return Outcome(privateFolders: true, ownProc: proc == 0,
                       problem: proc == 0 ? nil : "mounting a procfs for the job's PID namespace: \(Errno(-proc))")
    }

    /// The masked folders that exist as real directories (not links).
    static func coveredFolders() -> [String] {
        masked.filter { dir in
            var st = stat()
            return lstat(dir, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }
    }

    /// One path to bind back: its name under a covered folder, and an O_PATH
    /// descriptor of what it names now.
    struct BindBack {
        var target: String
        var fd: Int32
        var isDirectory: Bool
    }

    /// For every path of `keep` that lies under a covered folder, by its own
    /// name or through links (its real path): a descriptor to bind back at
    /// each such name. Paths beneath another kept path are left out (the
    /// recursive bind of the outer one brings them). Missing paths are skipped.
    static func bindBacks(_ keep: [String]) throws -> [BindBack] {
        let covered = coveredFolders()
        func isCovered(_ path: String) -> Bool { covered.contains { path == $0 || path.hasPrefix($0 + "/") } }
        var targets: [String: String] = [:] // name under a covered folder -> the path to open
        for raw in keep where raw.hasPrefix("/") {
            let named = (raw as NSString).standardizingPath
            guard let real = realpath(named, nil) else { continue }
            let resolved = String(cString: real)
            free(real)
            for name in [named, resolved] where isCovered(name) { targets[name] = resolved }
        }
        var result: [BindBack] = []
        for (target, source) in targets.sorted(by: { $0.key < $1.key }) {
            if result.contains(where: { target.hasPrefix($0.target + "/") }) { continue }
            let fd = open(source, cshims_o_path() | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                for b in result { close(b.fd) }
                throw Errno(e, "open \(source)")
            }
            var st = stat()
            fstat(fd, &st)
            result.append(BindBack(target: target, fd: fd, isDirectory: (st.st_mode & S_IFMT) == S_IFDIR))
        }
        return result
    }

    /// Creates `b.target` on the fresh tmpfs (a folder, or an empty file for
    /// a file) and binds what its descriptor names there.
    static func bind(_ b: BindBack) throws {
        let parent = (b.target as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: b.isDirectory ? b.target : parent,
                                                withIntermediateDirectories: true)
        if !b.isDirectory {
            let fd = open(b.target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Errno(errno, "create \(b.target)") }
            close(fd)
        }
        try checkingNegativeErrno("bind \(b.target) back") { cshims_bind_fd(b.fd, b.target) }
    }
}
