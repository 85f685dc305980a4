#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
import Foundation
import CShims
import RunnerCore

/// The seccomp filter: allow by default, refuse the dangerous set of Docker's
/// default profile with EPERM, `clone3` with ENOSYS (glibc then falls back to
/// `clone`, whose flags can be inspected), and other architectures' calls
/// (x32, i386) by the bad-arch action, which kills the whole process with
/// SIGSYS (the supervisor reports that as `sandbox_violation`).
public enum SyscallFilter {
    /// System calls refused with EPERM.
    public static let refused = [
        "mount", "umount", "umount2", "pivot_root", "chroot", "ptrace", "process_vm_readv", "process_vm_writev",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
        "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "unshare", "setns", "userfaultfd",
        "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "acct", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "stime", "syslog", "iopl", "ioperm",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen", "fsconfig", "fsmount", "fspick",
        "move_mount", "open_tree", "mount_setattr", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup",
        "nfsservctl", "uselib", "get_kernel_syms", "query_module", "vm86", "vm86old", "kcmp",
        "fanotify_init", "pidfd_getfd",
    ]

    /// clone(2) flags that create namespaces.
    static let namespaceFlags: [UInt64] = [
        0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000, 0x80,
    ]

    /// personality(2) flags that weaken the process (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC).
    static let personalityFlags: [UInt64] = [0x0040000, 0x0400000]

    /// Loads the filter for all threads of the process. With
    /// `isolatedNetwork` it also refuses what the job's network must not
    /// have: UDP (EACCES: no DNS of its own, the proxy resolves names), raw
    /// sockets and packet sockets (EPERM).
    public static func install(isolatedNetwork: Bool = false) throws {
        guard let ctx = seccomp_init(SCMP_ACT_ALLOW) else { throw Errno(ENOMEM, "seccomp_init") }
        defer { seccomp_release(ctx) }
        // Every thread of the process gets the filter, or none: checked, not assumed.
        try check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1), "seccomp_attr_set TSYNC")
        // The kernel's own error codes, not libseccomp's catch-all ECANCELED:
        // a thread TSYNC could not reach must be told apart (ESRCH).
        try check(seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1), "seccomp_attr_set SYSRAWRC")
        // libseccomp's default bad-arch action kills only the calling thread,
        // which can leave a multi-threaded agent (Node) hanging: kill the process.
        if seccomp_api_get() >= 3 {
            try check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "seccomp_attr_set BADARCH")
        }
        let eperm = cshims_scmp_act_errno(UInt16(EPERM))
        for name in refused {
            let nr = seccomp_syscall_resolve_name(name)
            if nr == __NR_SCMP_ERROR { continue }
            try check(seccomp_rule_add_array(ctx, eperm, nr, 0, nil), "seccomp_rule_add \(name)")
        }
        func masked(_ syscall: String, _ flags: [UInt64]) throws {
            let nr = seccomp_syscall_resolve_name(syscall)
            guard nr != __NR_SCMP_ERROR else { return }
            for flag in flags {
                var cmp = scmp_arg_cmp(arg: 0, op: SCMP_CMP_MASKED_EQ, datum_a: flag, datum_b: flag)
                try check(seccomp_rule_add_array(ctx, eperm, nr, 1, &cmp), "seccomp_rule_add \(syscall)")
            }
        }
        try masked("clone", namespaceFlags)
        try masked("personality", personalityFlags)
        let clone3 = seccomp_syscall_resolve_name("clone3")
        if clone3 != __NR_SCMP_ERROR {
            try check(seccomp_rule_add_array(ctx, cshims_scmp_act_errno(UInt16(ENOSYS)), clone3, 0, nil),
                      "seccomp_rule_add clone3")
        }
        if isolatedNetwork { try refuseSockets(ctx) }
        // With TSYNC the kernel returns the id of a thread it could not
        // synchronise (a positive value), which older libseccomp passes on.
        // libseccomp 2.5 turns that into -ESRCH (with SYSRAWRC).
        let loaded = seccomp_load(ctx)
        if loaded > 0 { throw Errno(ESRCH, "seccomp_load: thread \(loaded) could not be synchronised (TSYNC)") }
        if loaded == -ESRCH { throw Errno(ESRCH, "seccomp_load: a thread could not be synchronised (TSYNC)") }
        try check(loaded, "seccomp_load")
        let unfiltered = threadsWithoutFilter()
        if !unfiltered.isEmpty {
            throw Errno(ESRCH, "seccomp: threads \(unfiltered) run without the filter after TSYNC")
        }
    }

    /// The ids of this process's threads whose seccomp mode is not 2
    /// (filtered), from /proc/self/task/*/status. Empty once the filter is
    /// installed on every thread.
    public static func threadsWithoutFilter() -> [Int] {
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else { return [] }
        return tids.compactMap(Int.init).sorted().filter { tid in
            guard let status = try? String(contentsOfFile: "/proc/self/task/\(tid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Seccomp:") }) else { return false }
            return Int(line.dropFirst("Seccomp:".count).trimmingCharacters(in: .whitespaces)) != 2
        }
    }

    /// socket(2) rules for an isolated network: only TCP, Unix and netlink sockets.
    static func refuseSockets(_ ctx: scmp_filter_ctx) throws {
        let nr = seccomp_syscall_resolve_name("socket")
        guard nr != __NR_SCMP_ERROR else { return }
        let eperm = cshims_scmp_act_errno(UInt16(EPERM)), eacces = cshims_scmp_act_errno(UInt16(EACCES))
        let typeMask: UInt64 = 0xf // SOCK_CLOEXEC and SOCK_NONBLOCK live above it
        var packet = scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: UInt64(AF_PACKET), datum_b: 0)
        try check(seccomp_rule_add_array(ctx, eperm, nr, 1, &packet), "seccomp_rule_add socket AF_PACKET")
        var raw = scmp_arg_cmp(arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: typeMask, datum_b: UInt64(SOCK_RAW.rawValue))
        try check(seccomp_rule_add_array(ctx, eperm, nr, 1, &raw), "seccomp_rule_add socket SOCK_RAW")
        for family in [AF_INET, AF_INET6] {
            var rules = [scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: UInt64(family), datum_b: 0),
                         scmp_arg_cmp(arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: typeMask, datum_b: UInt64(SOCK_DGRAM.rawValue))]
            try check(seccomp_rule_add_array(ctx, eacces, nr, 2, &rules), "seccomp_rule_add socket UDP")
        }
    }

    /// libseccomp's view of the kernel: 0 when seccomp filters are unusable,
    /// 3 or more when SCMP_ACT_KILL_PROCESS is supported (see seccomp_api_get(3)).
    public static func apiLevel() -> Int { Int(seccomp_api_get()) }

    /// The seccomp mode of this process from /proc/self/status (0 none,
    /// 1 strict, 2 filter), or nil when the kernel reports no seccomp at all.
    public static func currentMode() -> Int? {
        guard let fd = fopen("/proc/self/status", "r") else { return nil }
        defer { fclose(fd) }
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), fd) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("Seccomp:") {
                return Int(String(text.dropFirst("Seccomp:".count).filter(\.isNumber)))
            }
        }
        return nil
    }

    private static func check(_ rc: Int32, _ what: String) throws {
        if rc < 0 { throw Errno(-rc, what) }
    }
}
