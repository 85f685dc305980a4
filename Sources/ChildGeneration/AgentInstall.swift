#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Where an agent CLI is installed, and what of it the sandbox must let the
/// job read: the command's own folder, and for a Python virtualenv (aider,
/// mini-swe-agent) the whole environment, whose `bin/` holds the command and
/// whose `lib/` its packages. The interpreter the virtualenv was made from
/// must be readable too: Debian's `/usr/bin/python3` is; another one (pyenv
/// under a home) needs `SANDBOX_READ_PATHS`.
public enum AgentInstall {
    /// The absolute path of `command` (as given, or found on PATH), if executable.
    public static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        for dir in ["/usr/local/bin", "/usr/bin", "/bin"] where access("\(dir)/\(command)", X_OK) == 0 {
            return "\(dir)/\(command)"
        }
        return nil
    }

    /// The folders the job must read and execute for `command`: its folder,
    /// and the virtualenv (the folder above, holding `pyvenv.cfg`) of the
    /// command as named and as resolved through links. Empty when the
    /// command is not found.
    public static func readablePaths(_ command: String) -> [String] {
        guard let path = resolve(command) else { return [] }
        var paths: [String] = []
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for candidate in [path, real] {
            let dir = (candidate as NSString).deletingLastPathComponent
            let env = (dir as NSString).deletingLastPathComponent
            if access(env + "/pyvenv.cfg", R_OK) == 0 {
                paths.append(env)
            } else {
                paths.append(dir)
            }
        }
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }
}
