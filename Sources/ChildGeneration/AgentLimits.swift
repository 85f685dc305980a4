#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// How the sandbox's limits show in an agent's end, for every agent CLI
/// (Cline, aider, mini-swe-agent): the failures that fail the job instead of
/// moving on to the next generator, which would run under the same limits.
enum AgentLimits {
    /// Markers of a failed allocation in an agent's stderr: Python's
    /// `MemoryError`, strerror(ENOMEM) "Cannot allocate memory", and "out of
    /// memory" (Node's "JavaScript heap out of memory", many C tools).
    static let memoryErrorMarkers = ["MemoryError", "Cannot allocate memory", "out of memory"]

    /// The memory-error marker `line` contains (case-insensitive), if any.
    static func memoryErrorMarker(in line: String) -> String? {
        let lower = line.lowercased()
        return memoryErrorMarkers.first { lower.contains($0.lowercased()) }
    }

    /// The failure to report when the sandbox's limits stopped the agent, or
    /// nil when it ended for another reason. These fail the job (no fallback
    /// to the next generator: it would run under the same limits).
    /// - SIGXCPU (or exit 128+SIGXCPU, a shell's report of a command it ran),
    ///   or SIGKILL after using at least JOB_CPU_SECONDS of CPU (the hard
    ///   limit, soft + `Confinement.cpuGraceSeconds`): the CPU limit.
    /// - SIGXFSZ (or exit 128+SIGXFSZ): RLIMIT_FSIZE, JOB_MAX_TOTAL_MB + 64 MB.
    /// - SIGSYS (or exit 128+SIGSYS): the seccomp filter killed it (another
    ///   architecture's call): `sandbox_violation`.
    /// - A failed run whose stderr showed a memory-error marker: a heuristic,
    ///   since RLIMIT_DATA makes allocations fail and the agent decides how to
    ///   die (an exception, an abort, an exit code); a run that succeeds
    ///   despite such a line is not a failure.
    static func failure(agent: String, _ status: AgentProcess.Status, cpuSeconds: Double, memoryError: String?,
                        settings: ChildSettings) -> JobFailure? {
        let cpu = "\(agent): CPU limit JOB_CPU_SECONDS=\(settings.cpuSeconds) exceeded"
        let fsize = "\(agent): file size limit exceeded: a file reached RLIMIT_FSIZE = JOB_MAX_TOTAL_MB+64 = \(settings.maxTotalMB + 64) MB"
        switch status {
        case .signaled(SIGXCPU): return JobFailure(.resourceLimit, cpu + " (SIGXCPU)")
        case .exited(128 + SIGXCPU): return JobFailure(.resourceLimit, cpu + " (exit status \(128 + SIGXCPU): a process killed by SIGXCPU)")
        case .signaled(SIGKILL) where cpuSeconds >= Double(settings.cpuSeconds):
            return JobFailure(.resourceLimit, cpu + " (SIGKILL at the hard limit after \(Int(cpuSeconds)) s of CPU)")
        case .signaled(SIGXFSZ): return JobFailure(.resourceLimit, fsize + " (SIGXFSZ)")
        case .exited(128 + SIGXFSZ): return JobFailure(.resourceLimit, fsize + " (exit status \(128 + SIGXFSZ): a process killed by SIGXFSZ)")
        case .signaled(SIGSYS), .exited(128 + SIGSYS):
            return JobFailure(.sandboxViolation, "\(agent): killed by SIGSYS: the seccomp filter refused a system call "
                + "(another architecture's, i386 int 0x80 or x32)" + (status == .signaled(SIGSYS) ? "" : " (exit status 159)"))
        case .exited(0), .timedOut: return nil
        case .exited, .signaled:
            guard let marker = memoryError else { return nil }
            return JobFailure(.resourceLimit, "\(agent): memory limit JOB_MEMORY_MB=\(settings.memoryMB) exceeded "
                + "(the agent failed with \"\(marker)\" on stderr)")
        }
    }

}
