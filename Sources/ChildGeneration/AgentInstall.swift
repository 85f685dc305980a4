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

    /// The virtualenv `command` runs from (its folder's parent, holding
    /// `pyvenv.cfg`), as resolved through links; nil for any other install.
    public static func virtualenv(_ command: String) -> String? {
        guard let path = resolve(command) else { return nil }
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let env = ((real as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        return access(env + "/pyvenv.cfg", R_OK) == 0 ? env : nil
    }

    /// The version of `package` (its PyPI name) installed in `command`'s
    /// virtualenv, from its `.dist-info` folder's name; nothing is run.
    public static func packageVersion(_ command: String, package: String) -> String? {
        guard let env = virtualenv(command) else { return nil }
        let prefix = package.replacingOccurrences(of: "-", with: "_").lowercased() + "-"
        let fm = FileManager.default
        for lib in ((try? fm.contentsOfDirectory(atPath: env + "/lib")) ?? []).sorted() where lib.hasPrefix("python") {
            let site = env + "/lib/" + lib + "/site-packages"
            for entry in (try? fm.contentsOfDirectory(atPath: site)) ?? []
            where entry.lowercased().hasPrefix(prefix) && entry.hasSuffix(".dist-info") {
                return String(entry.dropFirst(prefix.count).dropLast(".dist-info".count))
            }
        }
        return nil
    }

    /// The folder of the interpreter `command`'s virtualenv was made from
    /// (`home` in its `pyvenv.cfg`), which the job must be able to read.
    public static func interpreterHome(_ command: String) -> String? {
        guard let env = virtualenv(command),
              let text = try? String(contentsOfFile: env + "/pyvenv.cfg", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == "home" { return parts[1] }
        }
        return nil
    }
}
