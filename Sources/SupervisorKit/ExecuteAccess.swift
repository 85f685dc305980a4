#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Whether a JOB_UID_RANGE uid can execute the job child. Such a child runs
/// as uid = gid from the range with no supplementary group, so the
/// supervisor (root) cannot ask `access(2)` for it: it reads the modes of
/// the path's directories and of the file itself, as the kernel would. A
/// build in root's home (mode 0700) is the usual case.
public enum ExecuteAccess {
    /// Nil when `uid` (with gid `gid`) may execute `path`; else what stops
    /// it: `execute permission on <path> (mode 0700, owner 0:0)`, or the file
    /// missing. Symlinks count both as named and as resolved.
    public static func problem(path: String, uid: UInt32, gid: UInt32) -> String? {
        let resolved = RemotePolicy.realPath(path) ?? path
        for candidate in [path, resolved] {
            var prefix = ""
            for part in candidate.split(separator: "/").dropLast() {
                prefix += "/" + part
                if let why = lacksExecute(prefix, uid: uid, gid: gid) { return why }
            }
        }
        return lacksExecute(resolved, uid: uid, gid: gid)
    }

    static func lacksExecute(_ path: String, uid: UInt32, gid: UInt32) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return "\(path) cannot be read (\(String(cString: strerror(errno))))" }
        let mode = st.st_mode & 0o7777
        let bits = st.st_uid == uid ? (mode >> 6) : st.st_gid == gid ? (mode >> 3) : mode
        guard bits & 0o1 == 0 else { return nil }
        return "execute permission on \(path) (mode \(String(mode, radix: 8).leftPadded(4)), owner \(st.st_uid):\(st.st_gid))"
    }

    /// The job's failure when a JOB_UID_RANGE uid cannot execute the child:
    /// the cause and the fix, instead of blaming the namespaces.
    public static func failure(childPath: String, uid: Int32) -> JobFailure? {
        guard let why = problem(path: childPath, uid: UInt32(bitPattern: uid), gid: UInt32(bitPattern: uid)) else { return nil }
        return JobFailure(.sandboxUnavailable, "JOB_UID_RANGE: the job's uid \(uid) cannot execute the job child "
            + "\(childPath): \(why) is missing for it. Fix: install agent-runner-job (or point AGENT_RUNNER_JOB_PATH) "
            + "where every uid can reach it, e.g. /usr/local/bin or a 0755 folder; a build under a 0700 home is not")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
