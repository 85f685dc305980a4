#if canImport(Glibc)
import Glibc
#endif
import CShims

/// How a process ended. A non-zero exit is a value, not an error.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let c): return "exit code \(c)"
        case .signaled(let s): return "signal \(s) (\(Self.signalName(s)))"
        }
    }

    /// SIGKILL → "SIGKILL", etc.
    public static func signalName(_ s: Int32) -> String {
        let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
                                      SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE",
                                      SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGTERM: "SIGTERM",
                                      SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGSYS: "SIGSYS"]
        return names[s] ?? "SIG\(s)"
    }

    init(waitStatus status: Int32) {
        self = cshims_wifsignaled(status) != 0 ? .signaled(cshims_wtermsig(status)) : .exited(cshims_wexitstatus(status))
    }
}

/// The kernel namespaces a spawned process gets.
public struct Namespaces: Sendable, Equatable {
    /// A network namespace of its own (only loopback inside).
    public var network: Bool
    /// Outer uid and gid that become 0 inside its user namespace.
    public var uid: Int32
    public var gid: Int32

    public init(network: Bool, uid: Int32, gid: Int32) {
        self.network = network
        self.uid = uid
        self.gid = gid
    }

    /// User + PID (+ network) namespace flags: the process is init of its PID
    /// namespace, so everything it starts dies with it.
    var flags: UInt64 { cshims_clone_newuser() | cshims_clone_newpid() | (network ? cshims_clone_newnet() : 0) }
}

/// Confinement layers a spawned program gets on top of its parent's, applied
/// in the child between clone and execve (by C code only): both are prepared
/// by the parent, so nothing is built or allocated there.
public struct ExecLayers: Sendable {
    /// A Landlock ruleset descriptor (the parent keeps it open), or -1.
    public var landlockRuleset: Int32
    /// A classic BPF seccomp program (struct sock_filter[]), or empty.
    public var seccompFilter: [UInt8]
    public init(landlockRuleset: Int32 = -1, seccompFilter: [UInt8] = []) {
        self.landlockRuleset = landlockRuleset
        self.seccompFilter = seccompFilter
    }
}

/// One spawned process, the single spawn/reap implementation for the job
/// child (spawned by the supervisor) and the agent (spawned by the job
/// child). It owns a pidfd, so signals never reach a recycled pid; its
/// process group is signalled only while the leader is unreaped (after
/// `waitid(WNOWAIT)`), so the group id cannot have been reused either.
public final class SpawnedProcess: Sendable {
    public let pid: pid_t
    private let pidfd: Int32
    /// True once the leader has been reaped (then only the pidfd may be used).
    private let reaped = Locked(false)

    /// What to spawn and how.
    public struct Options: Sendable {
        public var stdin: Int32 = -1, stdout: Int32 = -1, stderr: Int32 = -1
        public var uid: Int32? = nil, gid: Int32? = nil
        public var workingDirectory: String? = nil
        public var namespaces: Namespaces? = nil
        /// A cgroup's `cgroup.procs` to enter before exec.
        public var cgroupProcs: String? = nil
        /// PR_SET_PDEATHSIG; only from a thread that outlives the child.
        public var deathSignal: Int32 = 0
        /// Confinement the process applies to itself just before execve.
        public var layers: ExecLayers? = nil
        public init() {}
    }

    /// Spawns `executable` with exactly `environment`. Throws `Errno` when
    /// the clone, the id mapping, the cgroup or the exec fails.
    public init(executable: String, arguments: [String], environment: [String: String], options o: Options) throws {
        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environment: environment)
        var c = cshims_spawn_options()
        c.stdin_fd = o.stdin; c.stdout_fd = o.stdout; c.stderr_fd = o.stderr
        c.uid = o.uid ?? -1; c.gid = o.gid ?? -1
        c.namespaces = o.namespaces?.flags ?? 0
        c.map_uid = o.namespaces?.uid ?? -1; c.map_gid = o.namespaces?.gid ?? -1
        c.death_signal = o.deathSignal
        c.landlock_ruleset_fd = o.layers?.landlockRuleset ?? -1
        let filter = o.layers?.seccompFilter ?? []
        let pid: pid_t = o.workingDirectory.withOptionalCString { cwd in
            o.cgroupProcs.withOptionalCString { cg in
                filter.withUnsafeBytes { bpf in
                    c.cwd = cwd
                    c.cgroup_procs = cg
                    c.seccomp_filter = bpf.isEmpty ? nil : bpf.baseAddress
                    c.seccomp_filter_bytes = bpf.count
                    return cshims_spawn_ex(executable, argv.pointers, envp.pointers, &c)
                }
            }
        }
        guard pid > 0 else { throw Errno(-pid, o.namespaces == nil ? "spawn \(executable)" : "spawn \(executable) in new namespaces") }
        self.pid = pid
        pidfd = c.pidfd
    }

    deinit { if pidfd >= 0 { close(pidfd) } }

    /// Signals the process itself (through its pidfd).
    public func signal(_ sig: Int32) { _ = cshims_pidfd_signal(pidfd, sig) }

    /// Signals its process group, and the process itself, unless it has been reaped.
    public func signalGroup(_ sig: Int32) {
        reaped.withLock { done in
            if !done { _ = kill(-pid, sig) }
        }
        signal(sig)
    }

    /// Blocks until the process exits; then SIGKILLs what is left of its
    /// process group and reaps it. Returns its status and CPU seconds (its own
    /// plus the descendants it waited for). Call from a dedicated thread.
    public func waitForExit() -> (status: ExitStatus, cpuSeconds: Double) {
        _ = cshims_wait_exited_nowait(pid)
        return reapExited()
    }

    /// The pidfd, readable once the process has exited (for one thread that
    /// waits for many processes: `epoll` on each, then `reapExited`). Valid
    /// while this object lives.
    public var exitDescriptor: Int32 { pidfd }

    /// Once the process has exited (`exitDescriptor` readable): SIGKILLs what
    /// is left of its process group and reaps it, as `waitForExit` does.
    public func reapExited() -> (status: ExitStatus, cpuSeconds: Double) {
        reaped.withLock { done in
            if !done { _ = kill(-pid, SIGKILL) }
            var status: Int32 = 0
            var usage = rusage()
            _ = try? retryingEINTR("wait4") { wait4(pid, &status, 0, &usage) }
            done = true
            let cpu = Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
            return (ExitStatus(waitStatus: status), cpu)
        }
    }

    /// Non-blocking and non-reaping: whether the process has exited.
    public var hasExited: Bool {
        var info = siginfo_t()
        return waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) == 0 && info._sifields._sigchld.si_pid == pid
    }

    /// Non-blocking: the status when the process has exited (then reaped as above), else nil.
    public func exitedStatus() -> (status: ExitStatus, cpuSeconds: Double)? {
        var info = siginfo_t()
        let r = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG)
        guard r == 0, info._sifields._sigchld.si_pid == pid else { return nil }
        return waitForExit()
    }
}

extension Optional where Wrapped == String {
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) -> R) -> R {
        switch self {
        case .some(let s): return s.withCString { body($0) }
        case .none: return body(nil)
        }
    }
}
