#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
import CShims
import Foundation
import RunnerCore

/// The agent's own confinement, narrower than the job child's and applied on
/// top of it just before the agent's execve (`ExecLayers`, by the spawn's C
/// code): a Landlock layer that leaves out what only the trusted job child
/// needs (the local git remote, which the publisher writes after the agent
/// phase, and the egress proxy's socket folder), and, where the job has no
/// mount namespace of its own, a seccomp layer that refuses `socket(AF_UNIX)`
/// so no host socket can be reached (the agent needs only TCP to the
/// forwarder). Both are built here, in the job child, before any spawn.
public enum AgentLayers {
    /// The layers for an agent that may touch `rules` (already narrowed by
    /// the caller), in a job whose mount namespace came out as `mounts`. The
    /// returned ruleset descriptor stays open for the job's life (each agent
    /// spawn applies it).
    public static func make(rules: Landlock.Rules, mounts: MountNamespace.Outcome?) throws -> ExecLayers {
        let (ruleset, _) = try Landlock.makeRuleset(rules.withProcfs(whole: mounts?.ownProc == true))
        if mounts?.privateFolders == true { return ExecLayers(landlockRuleset: ruleset) }
        do {
            return ExecLayers(landlockRuleset: ruleset, seccompFilter: try unixSocketFilter())
        } catch {
            close(ruleset)
            throw error
        }
    }

    /// A classic BPF program that answers `socket(AF_UNIX, …)` with EPERM and
    /// allows everything else (the job's own filter still applies beneath it).
    public static func unixSocketFilter() throws -> [UInt8] {
        guard let ctx = seccomp_init(SCMP_ACT_ALLOW) else { throw Errno(ENOMEM, "seccomp_init") }
        defer { seccomp_release(ctx) }
        let nr = seccomp_syscall_resolve_name("socket")
        var unix = scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: UInt64(AF_UNIX), datum_b: 0)
        let added = seccomp_rule_add_array(ctx, cshims_scmp_act_errno(UInt16(EPERM)), nr, 1, &unix)
        if added < 0 { throw Errno(-added, "seccomp_rule_add socket AF_UNIX") }
        // libseccomp writes the program to a descriptor: a pipe, read back whole.
        var fds: [Int32] = [0, 0]
        try retryingEINTR("pipe2") { cshims_pipe_cloexec(&fds) }
        defer { close(fds[0]) }
        let exported = seccomp_export_bpf(ctx, fds[1])
        close(fds[1])
        if exported < 0 { throw Errno(-exported, "seccomp_export_bpf") }
        var program: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try retryingEINTR("read") { read(fds[0], &chunk, chunk.count) }
            if n == 0 { break }
            program += chunk[0..<n]
        }
        guard !program.isEmpty, program.count % 8 == 0 else {
            throw Errno(EINVAL, "seccomp_export_bpf: \(program.count) bytes")
        }
        return program
    }
}
