#if canImport(Glibc)
import Glibc
#endif
import CShims
import RunnerCore

/// `agent-runner-job --self-test`: proves on this host that the confinement a
/// job gets really refuses things. It creates a temporary workspace under
/// TMPDIR, forks, and the forked process applies the same `Confinement` a job
/// does (with that workspace), then tries to
/// - create a file inside the workspace (must work: the sandbox is usable),
/// - create a file next to the workspace, outside it (Landlock must refuse),
/// - `unshare(CLONE_NEWUSER)` (the seccomp filter must refuse with EPERM),
/// and checks that /proc/self/status reports seccomp filter mode. In a PID
/// namespace of its own (doctor runs it in the namespaces a job gets) the
/// probe first makes the job's mount namespace and reports how it came out
/// (`mountNamespace`: "made" or why not), whether it can read its own
/// /proc/self/status, and whether the host's journal socket is visible. With
/// `--network-namespace` it first brings loopback up, as the job child does
/// before confining itself.
/// It prints
/// one JSON line and the process exits 0 only when every check held. The
/// unconfined parent removes the workspace afterwards (a confined process
/// cannot remove its own workspace directory: that is a write to its parent).
public enum SandboxSelfTest {
    /// Runs the self-test; returns the exit status. Call it before any other
    /// thread exists (it forks).
    public static func run() -> Int32 {
        var loopback: JSONValue? = nil
        if CommandLine.arguments.contains("--network-namespace") {
            let r = cshims_loopback_up()
            loopback = .string(r == 0 ? "up" : "failed (\(Errno(-r)))")
            if r != 0 { return report(["ok": false, "loopback": loopback!], status: 1) }
        }
        var base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        if base.count > 1, base.hasSuffix("/") { base.removeLast() }
        var template = Array("\(base)/agent-runner-selftest-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            return report(["ok": false, "error": .string("\(Errno(errno, "mkdtemp in \(base)"))")], status: 2)
        }
        let workspace = String(cString: made)
        let outside = "\(base)/agent-runner-selftest-\(getpid())-outside"
        let inNamespaces = getpid() == 1
        let pid = fork()
        let forkError = errno // before the clean-up below changes it
        if pid == 0 {
            _exit(probe(workspace: workspace, outside: outside, loopback: loopback, mountNamespace: inNamespaces))
        }
        var status: Int32 = 0
        if pid > 0 { _ = try? retryingEINTR("waitpid") { waitpid(pid, &status, 0) } }
        // The probe creates at most this one file in the workspace.
        unlink(workspace + "/inside-probe")
        rmdir(workspace)
        if pid < 0 { return report(["ok": false, "error": .string("\(Errno(forkError, "fork"))")], status: 2) }
        if cshims_wifsignaled(status) != 0 {
            return report(["ok": false, "error": .string("the probe process was killed by signal \(cshims_wtermsig(status))")],
                          status: 2)
        }
        return cshims_wexitstatus(status)
    }

    /// In the forked process: confine, try, report. Returns the exit status.
    static func probe(workspace: String, outside: String, loopback: JSONValue? = nil, mountNamespace: Bool) -> Int32 {
        var confinement = Confinement(
            rules: .init(readWrite: [workspace], readExecute: Confinement.systemPaths, devices: Confinement.devicePaths),
            memoryMB: 1024, cpuSeconds: 60, maxWriteMB: 64, enforced: true)
        confinement.mountNamespace = mountNamespace
        let applied: Confinement.Applied
        do {
            applied = try confinement.apply()
        } catch {
            return report(["ok": false, "error": .string("cannot confine: \(error)")], status: 1)
        }
        let mounts: String = switch applied.mountNamespace {
        case let m? where m.isComplete: "made"
        case let m? where m.privateFolders: "made, with the host's /proc (\(m.problem ?? ""))"
        case let m?: "unavailable: " + (m.problem ?? "")
        case nil: "not tried (no PID namespace of its own)"
        }
        let procSelf = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) != nil
        var journal = stat()
        let journalVisible = stat("/run/systemd/journal/socket", &journal) == 0
        let abi = Landlock.abiVersion() ?? 0
        let inside = create(workspace + "/inside-probe")
        let outsideResult = create(outside)
        if outsideResult == nil { unlink(outside) } // not refused: leave nothing behind
        let unshareResult = cshims_unshare_user_namespace()
        let mode = SyscallFilter.currentMode() ?? -1

        let insideOK = inside == nil
        let outsideRefused = outsideResult == EACCES || outsideResult == EPERM
        let unshareRefused = unshareResult == -EPERM
        let ok = insideOK && outsideRefused && unshareRefused && mode == 2
        var fields: [String: JSONValue] = [
            "selfTest": "sandbox", "ok": .bool(ok), "landlockABI": .int(Int64(abi)), "seccompMode": .int(Int64(mode)),
            "writeInside": .string(insideOK ? "allowed" : "failed (\(Errno(inside!)))"),
            "writeOutside": .string(outsideRefused ? "refused (\(Errno(outsideResult!)))"
                : outsideResult == nil ? "ALLOWED" : "failed otherwise (\(Errno(outsideResult!)))"),
            "unshareUserNamespace": .string(unshareRefused ? "refused (\(Errno(EPERM)))"
                : unshareResult == 0 ? "ALLOWED" : "failed otherwise (\(Errno(-unshareResult)))"),
            "mountNamespace": .string(mounts), "procSelfStatus": .string(procSelf ? "readable" : "unreadable"),
            "journalSocket": .string(journalVisible ? "visible" : "absent"),
        ]
        fields["loopback"] = loopback
        return report(fields, status: ok ? 0 : 1)
    }

    /// Creates `path` exclusively; nil on success, else errno.
    static func create(_ path: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return errno }
        close(fd)
        return nil
    }

    /// Writes `fields` as one JSON line straight to fd 1 (no stdio buffer:
    /// the forked process leaves with `_exit`). Returns `status`.
    static func report(_ fields: [String: JSONValue], status: Int32) -> Int32 {
        var object = fields
        object["selfTest"] = "sandbox"
        try? writeAll(1, Array((JSONValue.object(object).jsonString + "\n").utf8))
        return status
    }
}
