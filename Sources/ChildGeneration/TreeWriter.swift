#if canImport(Glibc)
import Glibc
#endif
import CShims
import RunnerCore

/// A generated tree that passed every check: its files and total size.
public struct TreeSummary: Sendable, Hashable {
    public var files: [String]
    public var bytes: Int
}

/// Writes generated files beneath a root directory and never outside it, not
/// even for a moment: every path is checked first (all violations reported at
/// once), then each file is created with `openat2(RESOLVE_BENEATH|
/// RESOLVE_NO_SYMLINKS)` (falling back to `O_NOFOLLOW|O_EXCL`).
public struct TreeWriter: Sendable {
    public let root: String
    public let limits: TreeLimits

    public init(root: String, limits: TreeLimits) {
        self.root = root
        self.limits = limits
    }

    /// Checks `files` against the path rules and limits without writing.
    public func check(_ files: [(path: String, content: [UInt8])]) throws -> [(path: String, content: [UInt8])] {
        var violations: [PathViolation] = []
        var out: [(path: String, content: [UInt8])] = []
        var total = 0
        if files.count > limits.maxFiles {
            violations.append(.init("(tree)", "\(files.count) files, more than the limit of \(limits.maxFiles)"))
        }
        for f in files {
            switch PathPolicy.normalize(f.path) {
            case .failure(let v): violations.append(v)
            case .success(let p):
                if f.content.count > limits.maxFileBytes {
                    violations.append(.init(f.path, "\(f.content.count) bytes, more than the limit of \(limits.maxFileBytes)"))
                }
                total += f.content.count
                out.append((p, f.content))
            }
        }
        violations += PathPolicy.caseCollisions(out.map(\.path))
        if total > limits.maxTotalBytes {
            violations.append(.init("(tree)", "\(total) bytes in all, more than the limit of \(limits.maxTotalBytes)"))
        }
        if !violations.isEmpty { throw PathViolation.failure(violations) }
        return out
    }

    /// Checks, then writes `files` under `root` (which must exist and be empty
    /// of the same names). Returns what was written.
    @discardableResult
    public func write(_ files: [(path: String, content: [UInt8])]) throws -> TreeSummary {
        let checked = try check(files)
        let rootFD = try retryingEINTR("open \(root)") { open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        defer { close(rootFD) }
        var bytes = 0
        for f in checked {
            let comps = f.path.split(separator: "/").map(String.init)
            for i in 1..<comps.count { try makeDirectory(rootFD, parent: comps[0..<(i - 1)], name: comps[i - 1]) }
            let fd = try openBeneath(rootFD, f.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o644)
            defer { close(fd) }
            try writeAll(fd, f.content)
            bytes += f.content.count
        }
        return TreeSummary(files: checked.map(\.path).sorted(), bytes: bytes)
    }

    private func makeDirectory(_ rootFD: Int32, parent: ArraySlice<String>, name: String) throws {
        let parentFD = parent.isEmpty ? rootFD
            : try openBeneath(rootFD, parent.joined(separator: "/"), cshims_o_path() | O_DIRECTORY | O_NOFOLLOW, 0)
        defer { if parentFD != rootFD { close(parentFD) } }
        if mkdirat(parentFD, name, 0o755) != 0, errno != EEXIST { throw Errno(errno, "mkdir \(name)") }
    }

    private func openBeneath(_ dirFD: Int32, _ path: String, _ flags: Int32, _ mode: mode_t) throws -> Int32 {
        let r = cshims_openat2_beneath(dirFD, path, flags, mode)
        if r >= 0 { return r }
        if -r == ENOSYS {
            return try retryingEINTR("open \(path)") { openat(dirFD, path, flags | O_NOFOLLOW | O_CLOEXEC, mode) }
        }
        if -r == ELOOP || -r == EXDEV {
            throw PathViolation.failure([.init(path, "a symlink or escape on the way")])
        }
        throw Errno(-r, "open \(path)")
    }
}

/// Checks a tree a generator left on disk (Cline writes files itself): no
/// symlinks, no special files, no unsafe names, within the limits.
public enum TreeScanner {
    /// Walks `root` without following links. Throws `unsafe_output` naming
    /// every offending path.
    public static func scan(_ root: String, limits: TreeLimits) throws -> TreeSummary {
        var violations: [PathViolation] = []
        var files: [String] = []
        var bytes = 0
        let rootFD = try retryingEINTR("open \(root)") { open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        try walk(rootFD, prefix: "", violations: &violations, files: &files, bytes: &bytes, limits: limits, depth: 0)
        // TreeWriter's case rule: what an agent wrote itself must check out on any file system too.
        violations += PathPolicy.caseCollisions(files)
        if files.count > limits.maxFiles {
            violations.append(.init("(tree)", "\(files.count) files, more than the limit of \(limits.maxFiles)"))
        }
        if bytes > limits.maxTotalBytes {
            violations.append(.init("(tree)", "\(bytes) bytes in all, more than the limit of \(limits.maxTotalBytes)"))
        }
        if !violations.isEmpty { throw PathViolation.failure(violations) }
        return TreeSummary(files: files.sorted(), bytes: bytes)
    }

    /// Reads the directory open as `dirFD` (and closes it).
    private static func walk(_ dirFD: Int32, prefix: String, violations: inout [PathViolation], files: inout [String],
                             bytes: inout Int, limits: TreeLimits, depth: Int) throws {
        guard let dir = fdopendir(dirFD) else { close(dirFD); throw Errno(errno, "opendir \(prefix)") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names.sorted() {
            let rel = prefix.isEmpty ? name : prefix + "/" + name
            if case .failure(let v) = PathPolicy.normalize(rel) { violations.append(v); continue }
            var st = stat()
            guard fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0 else {
                violations.append(.init(rel, "cannot stat")); continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                guard depth < 64 else { violations.append(.init(rel, "nested deeper than 64 levels")); continue }
                let fd = openat(dirfd(dir), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { violations.append(.init(rel, "cannot open directory")); continue }
                try walk(fd, prefix: rel, violations: &violations, files: &files, bytes: &bytes, limits: limits,
                         depth: depth + 1)
            case S_IFREG:
                let size = Int(st.st_size)
                if size > limits.maxFileBytes {
                    violations.append(.init(rel, "\(size) bytes, more than the limit of \(limits.maxFileBytes)"))
                }
                files.append(rel)
                bytes += size
            case S_IFLNK: violations.append(.init(rel, "symlink"))
            default: violations.append(.init(rel, "special file (device, FIFO or socket)"))
            }
            if files.count > limits.maxFiles + 1 { break }
        }
    }
}
