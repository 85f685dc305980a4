#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// Everything the job child applies to itself before it touches the job:
/// its own mount namespace, rlimits, no-new-privs, not dumpable, no
/// capabilities, Landlock, seccomp.
public struct Confinement: Sendable {
    /// What Landlock lets the job touch.
    public var rules: Landlock.Rules
    /// RLIMIT_DATA in MB (JOB_MEMORY_MB); not RLIMIT_AS, which V8's reservations break.
    public var memoryMB: Int
    /// RLIMIT_CPU soft limit in seconds (JOB_CPU_SECONDS); the hard limit adds `cpuGraceSeconds`.
    public var cpuSeconds: Int
    /// The largest single file the child may write (RLIMIT_FSIZE).
    public var maxWriteMB: Int
    /// RLIMIT_NOFILE.
    public var maxOpenFiles: Int
    /// False with SANDBOX=off: `apply()` then applies nothing.
    public var enforced: Bool
    /// True when the job has a network namespace of its own (JOB_NETWORK
    /// proxy or none): no UDP, raw or packet sockets.
    public var isolatedNetwork: Bool = false
    /// RLIMIT_NPROC, the fallback for JOB_MAX_PROCESSES where no pids cgroup exists.
    public var maxProcesses: Int?
    /// Make the job's own mount namespace first (`MountNamespace`): the job
    /// child does, in its namespaces; the rules' paths and `keepPaths` stay
    /// reachable in it.
    public var mountNamespace: Bool = false
    /// Paths kept reachable in the mount namespace besides the rules' own
    /// (the workspace's own folder).
    public var keepPaths: [String] = []

    /// What `apply()` did.
    public struct Applied: Sendable {
        /// The one-line summary for the log.
        public var summary: String
        /// How the mount namespace came out; nil when none was wanted or
        /// nothing was enforced.
        public var mountNamespace: MountNamespace.Outcome?
        /// The Landlock rules as enforced: the whole fresh /proc when the
        /// mount namespace has one, the trees above hidden paths expanded.
        public var rules: Landlock.Rules
    }

    /// System paths readable (and executable) by every job. "/proc/self" is
    /// the job child's own entry; in the job's mount namespace, whose /proc
    /// shows only the job's processes, the whole /proc replaces it
    /// (`Landlock.Rules.withProcfs`).
    public static let systemPaths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt",
                                     "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
                                     "/sys/devices/system/cpu", "/sys/fs/cgroup"]
    /// Device files readable and writable by every job.
    public static let devicePaths = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/dev/full"]

    /// CPU seconds past the soft limit before SIGKILL (the soft limit sends SIGXCPU).
    public static let cpuGraceSeconds = 10

    /// A confinement; nothing happens until `apply()`.
    public init(rules: Landlock.Rules, memoryMB: Int, cpuSeconds: Int, maxWriteMB: Int, maxOpenFiles: Int = 4096,
                enforced: Bool) {
        self.rules = rules
        self.memoryMB = memoryMB
        self.cpuSeconds = cpuSeconds
        self.maxWriteMB = maxWriteMB
        self.maxOpenFiles = maxOpenFiles
        self.enforced = enforced
    }

    /// The line every job logs when `SANDBOX=off`: loud on purpose, since it
    /// means an LLM-steered agent runs with the supervisor's full access.
    public static let unconfinedWarning = "WARNING: SANDBOX=off: this job runs UNCONFINED: no Landlock, no seccomp, "
        + "no rlimits; it can read and write anything the runner's user can (development only, never in production)"

    /// Applies the confinement to the calling process. With `enforced` false
    /// it applies nothing and its summary is `unconfinedWarning`.
    public func apply() throws -> Applied {
        guard enforced else { return Applied(summary: Self.unconfinedWarning, mountNamespace: nil, rules: rules) }
        // Landlock and the rlimits bind the calling thread and the ones it
        // starts later; a thread that exists already would keep its freedom
        // (seccomp's TSYNC would reach it, Landlock would not). Checked first,
        // before anything is applied.
        let threads = Self.threadCount()
        guard threads == 1 else {
            throw JobFailure(.internal, "confinement must be applied before any other thread exists "
                + "(this process has \(threads) threads)")
        }
        try setLimit(RLIMIT_DATA, UInt64(memoryMB) << 20)
        try setLimit(RLIMIT_CPU, UInt64(cpuSeconds), hard: UInt64(cpuSeconds + Self.cpuGraceSeconds))
        try setLimit(RLIMIT_FSIZE, UInt64(maxWriteMB) << 20)
        try setLimit(RLIMIT_NOFILE, UInt64(maxOpenFiles))
        try setLimit(RLIMIT_CORE, 0)
        if let maxProcesses { try setLimit(__RLIMIT_NPROC, UInt64(maxProcesses)) }
        // The mount namespace needs the capabilities this process still has
        // in its user namespace; they are dropped right after.
        let mounts = mountNamespace
            ? try MountNamespace.make(keeping: rules.readWrite + rules.readExecute + rules.devices + keepPaths) : nil
        var rules = self.rules.withProcfs(whole: mounts?.ownProc == true)
        // Expanded now, while the trees above the hidden paths can still be
        // listed: the agent's layer is built from these after confinement.
        rules.readExecute = rules.expandedReadExecute()
        rules.hidden = []
        try checkingNegativeErrno("prctl(PR_SET_NO_NEW_PRIVS)") { cshims_set_no_new_privs() }
        try checkingNegativeErrno("prctl(PR_SET_DUMPABLE)") { cshims_set_not_dumpable() }
        // Root inside the job's user namespace keeps nothing: no capability
        // survives in this process or any it starts.
        try checkingNegativeErrno("drop capabilities") { cshims_drop_capabilities() }
        let abi = try Landlock.enforce(rules)
        try SyscallFilter.install(isolatedNetwork: isolatedNetwork)
        let net = rules.connectPorts.map { ports in abi >= 4 ? " tcp-connect=\(ports.map(String.init).joined(separator: ","))" : "" } ?? ""
        let summary = "sandbox: landlock ABI \(abi)\(net), seccomp filter\(isolatedNetwork ? " (no UDP/raw sockets)" : ""), "
            + "no capabilities, no-new-privs, rlimits data=\(memoryMB)MB cpu=\(cpuSeconds)s fsize=\(maxWriteMB)MB nofile=\(maxOpenFiles)"
            + (maxProcesses.map { " nproc=\($0)" } ?? "") + ", " + Self.describe(mounts)
        return Applied(summary: summary, mountNamespace: mounts, rules: rules)
    }

    /// The mount namespace's part of the summary line.
    static func describe(_ outcome: MountNamespace.Outcome?) -> String {
        guard let outcome else { return "no mount namespace" }
        if outcome.isComplete { return "own mount namespace (empty /run /tmp /dev/shm, own /proc)" }
        if outcome.privateFolders {
            return "own mount namespace (empty /run /tmp /dev/shm; the host's /proc: \(outcome.problem ?? ""))"
        }
        return "NO mount namespace (\(outcome.problem ?? "")): the agent may not create Unix sockets"
    }

    /// The threads of this process, from /proc/self/status (0 when unreadable).
    public static func threadCount() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Threads:") }) else { return 0 }
        return Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }

    private func setLimit(_ resource: __rlimit_resource, _ soft: UInt64, hard: UInt64? = nil) throws {
        let resource = __rlimit_resource_t(resource.rawValue)
        var current = rlimit()
        getrlimit(resource, &current)
        var lim = rlimit(rlim_cur: rlim_t(soft), rlim_max: rlim_t(hard ?? soft))
        // Never raise above an existing hard limit (that needs privilege).
        lim.rlim_max = min(lim.rlim_max, current.rlim_max)
        lim.rlim_cur = min(lim.rlim_cur, lim.rlim_max)
        guard setrlimit(resource, &lim) == 0 else { throw Errno(errno, "setrlimit(\(resource))") }
    }
}
