import RunnerCore

/// Limits on a generated tree (JOB_MAX_FILES, JOB_MAX_FILE_MB, JOB_MAX_TOTAL_MB).
public struct TreeLimits: Sendable {
    public var maxFiles: Int
    public var maxFileBytes: Int
    public var maxTotalBytes: Int
    public init(maxFiles: Int, maxFileBytes: Int, maxTotalBytes: Int) {
        self.maxFiles = maxFiles
        self.maxFileBytes = maxFileBytes
        self.maxTotalBytes = maxTotalBytes
    }
    public init(_ s: ChildSettings) {
        self.init(maxFiles: s.maxFiles, maxFileBytes: s.maxFileMB << 20, maxTotalBytes: s.maxTotalMB << 20)
    }
}

/// The rules every generated path must pass (README, Security model). Generated trees are
/// hostile input: these checks run before any byte is written.
public enum PathPolicy {
    /// The normalised relative path (`./a` → `a`, `a//b` → `a/b`), or why it is unsafe.
    public static func normalize(_ raw: String) -> Result<String, PathViolation> {
        let bytes = Array(raw.utf8)
        if bytes.isEmpty { return .failure(.init(raw, "empty path")) }
        if bytes.count > 4096 { return .failure(.init(raw, "path longer than 4096 bytes")) }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
            return .failure(.init(raw, "control or NUL character"))
        }
        if raw.contains("\\") { return .failure(.init(raw, "backslash in path")) }
        if raw.hasPrefix("/") { return .failure(.init(raw, "absolute path")) }
        var parts: [String] = []
        for comp in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if comp == "." { continue }
            if comp == ".." { return .failure(.init(raw, "'..' component")) }
            if comp.utf8.count > 255 { return .failure(.init(raw, "component longer than 255 bytes")) }
            let lower = comp.lowercased()
            // `.git` in any case, and NTFS/HFS aliases git itself refuses (`.git.`, `git~1`).
            if lower == ".git" || lower.hasPrefix(".git.") || lower == "git~1" || lower.hasPrefix(".git ") {
                return .failure(.init(raw, "'.git' component"))
            }
            if lower == ".gitmodules" { return .failure(.init(raw, "'.gitmodules' file")) }
            parts.append(String(comp))
        }
        if parts.isEmpty { return .failure(.init(raw, "path names the repository root")) }
        return .success(parts.joined(separator: "/"))
    }
}

/// One unsafe path and the rule it broke.
public struct PathViolation: Error, Sendable, Hashable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }
    /// The path, printable (control characters escaped), with the reason.
    public var description: String {
        var shown = ""
        for u in path.unicodeScalars.prefix(300) {
            shown += u.value < 0x20 || u.value == 0x7f ? "\\x" + String(u.value, radix: 16) : String(u)
        }
        return "\(shown) (\(reason))"
    }

    /// The `unsafe_output` failure naming every violation (the first 20).
    public static func failure(_ list: [PathViolation]) -> JobFailure {
        let named = list.prefix(20).map(\.description).joined(separator: "; ")
        let more = list.count > 20 ? " and \(list.count - 20) more" : ""
        return JobFailure(.unsafeOutput, "generated tree rejected: \(named)\(more)")
    }
}

extension PathPolicy {
    /// The case rule TreeWriter and TreeScanner share: a tree must check out
    /// alike on case-insensitive file systems (macOS, Windows), so no two
    /// files may differ only in case ("duplicate path") and no file may name,
    /// in any case, a directory that holds other files ("both a file and a
    /// directory"). `paths` are normalized relative file paths.
    public static func caseCollisions(_ paths: [String]) -> [PathViolation] {
        var violations: [PathViolation] = []
        var seen = Set<String>()
        var dirs = Set<String>()
        var kept: [String] = []
        for p in paths {
            if !seen.insert(p.lowercased()).inserted {
                violations.append(.init(p, "duplicate path")); continue
            }
            let comps = p.split(separator: "/")
            for i in 1..<max(comps.count, 1) { dirs.insert(comps[0..<i].joined(separator: "/").lowercased()) }
            kept.append(p)
        }
        for p in kept where dirs.contains(p.lowercased()) {
            violations.append(.init(p, "both a file and a directory"))
        }
        return violations
    }
}
