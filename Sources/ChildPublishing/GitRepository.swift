import CGit2
import CGitShims
import Foundation
import RunnerCore

/// Owns one `git_repository *` (freed in deinit) and the few operations the
/// publisher needs. Not thread-safe; the child uses it from one thread.
final class GitRepository {
    private let handle: OpaquePointer

    private static let initialized: Bool = {
        git_libgit2_init()
        _ = cshims_git_disable_owner_validation()
        // Nothing from HOME (the agent's) or the host: see the shim.
        precondition(cshims_git_ignore_user_config() == 0, "libgit2 refused to clear its config search path")
        return true
    }()

    /// `git init` in `path` (which may already hold the files to commit),
    /// with HEAD on `branch`.
    init(initAt path: String, branch: String) throws {
        _ = Self.initialized
        var repo: OpaquePointer?
        var opts = git_repository_init_options()
        try git("init options", git_repository_init_options_init(&opts, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION)))
        opts.flags = GIT_REPOSITORY_INIT_MKPATH.rawValue
        // HEAD names the branch from the start (no second write of HEAD).
        try branch.withCString { head in
            opts.initial_head = head
            try git("git init", git_repository_init_ext(&repo, path, &opts))
        }
        handle = repo!
        // No reflogs: the workspace serves one job, and they were five more
        // directories and files in .git per job.
        var config: OpaquePointer?
        try git("open config", git_repository_config(&config, handle))
        defer { git_config_free(config) }
        try git("core.logAllRefUpdates", git_config_set_bool(config, "core.logAllRefUpdates", 0))
    }

    deinit { git_repository_free(handle) }

    /// The in-memory object store from `keepNewObjectsInMemory()`; the
    /// repository's odb owns it (freed with the repository).
    private var mempack: OpaquePointer?

    /// From now on new objects (blobs, trees, the commit) stay in memory
    /// (libgit2's mempack) until `persistNewObjects()` writes them as one
    /// packfile: a commit of N files then creates two files in `.git`, not N
    /// loose objects and their fan-out directories. A push reads them from
    /// memory.
    func keepNewObjectsInMemory() throws {
        var backend: OpaquePointer?
        try git("in-memory object store", cshims_git_add_mempack(handle, &backend))
        mempack = backend
    }

    /// Writes the objects held in memory into the repository as one packfile.
    func persistNewObjects() throws {
        guard let mempack else { return }
        try git("write the new objects", cshims_git_mempack_persist(handle, mempack))
    }

    /// Scoped access to the raw handle; it must not escape the closure.
    func withHandle<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T { try body(handle) }

    /// The commit id a reference points at, or nil when it does not exist.
    func resolve(_ refName: String) throws -> git_oid? {
        var oid = git_oid()
        let rc = git_reference_name_to_id(&oid, handle, refName)
        if rc == GIT_ENOTFOUND.rawValue { return nil }
        try git("resolve \(refName)", rc)
        return oid
    }

    /// Stages the whole working tree (honouring .gitignore) and writes its tree.
    /// Returns the tree id and the number of files staged.
    func writeWorkingTree() throws -> (tree: git_oid, files: Int) {
        var index: OpaquePointer?
        try git("open index", git_repository_index(&index, handle))
        defer { git_index_free(index) }
        _ = try withStrArray(["*"]) { spec in
            try git("git add", git_index_add_all(index, spec, GIT_INDEX_ADD_DEFAULT.rawValue, nil, nil))
        }
        try git("write index", git_index_write(index))
        var tree = git_oid()
        try git("write tree", git_index_write_tree(&tree, index))
        return (tree, Int(git_index_entrycount(index)))
    }

    /// The tree id of commit `commit`.
    func treeOf(commit: git_oid) throws -> git_oid {
        var c: OpaquePointer?
        var id = commit
        try git("lookup commit", git_commit_lookup(&c, handle, &id))
        defer { git_commit_free(c) }
        return git_commit_tree_id(c).pointee
    }

    /// Walks first-parent history from `tip` (at most `limit` commits) and
    /// returns the first commit whose message contains `needle`.
    func findCommit(from tip: git_oid, containing needle: String, limit: Int) throws -> git_oid? {
        var walk: OpaquePointer?
        try git("revwalk", git_revwalk_new(&walk, handle))
        defer { git_revwalk_free(walk) }
        var start = tip
        try git("revwalk push", git_revwalk_push(walk, &start))
        git_revwalk_simplify_first_parent(walk)
        var oid = git_oid()
        var seen = 0
        while seen < limit, git_revwalk_next(&oid, walk) == 0 {
            seen += 1
            var c: OpaquePointer?
            guard git_commit_lookup(&c, handle, &oid) == 0 else { continue }
            defer { git_commit_free(c) }
            if let msg = git_commit_message(c), String(cString: msg).contains(needle) { return oid }
        }
        return nil
    }

    /// Creates a commit of `tree` on `refName` with an optional parent.
    func commit(tree treeID: git_oid, parent: git_oid?, refName: String, authorName: String, authorEmail: String,
                message: String) throws -> git_oid {
        var sig: UnsafeMutablePointer<git_signature>?
        try git("signature", git_signature_now(&sig, authorName, authorEmail))
        defer { git_signature_free(sig) }
        var tree: OpaquePointer?
        var tid = treeID
        try git("lookup tree", git_tree_lookup(&tree, handle, &tid))
        defer { git_tree_free(tree) }
        var parentCommit: OpaquePointer?
        if var p = parent { try git("lookup parent", git_commit_lookup(&parentCommit, handle, &p)) }
        defer { if parentCommit != nil { git_commit_free(parentCommit) } }
        var out = git_oid()
        var parents: [OpaquePointer?] = parentCommit.map { [$0] } ?? []
        _ = try parents.withUnsafeMutableBufferPointer { buf in
            try git("commit", git_commit_create(&out, handle, refName, sig, sig, "UTF-8", message, tree,
                                                buf.count, buf.baseAddress))
        }
        return out
    }
}

/// Runs `body` with a `git_strarray` view of `strings`.
func withStrArray<T>(_ strings: [String], _ body: (UnsafeMutablePointer<git_strarray>) throws -> T) rethrows -> T {
    var cStrings: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { cStrings.forEach { free($0) } }
    return try cStrings.withUnsafeMutableBufferPointer { buf in
        var array = git_strarray(strings: buf.baseAddress, count: buf.count)
        return try body(&array)
    }
}

extension git_oid {
    /// The 40-hex-digit id.
    var hex: String {
        var copy = self
        var buf = [CChar](repeating: 0, count: 41)
        git_oid_fmt(&buf, &copy)
        return String(decoding: buf.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func == (a: git_oid, b: git_oid) -> Bool {
        var x = a, y = b
        return git_oid_equal(&x, &y) != 0
    }
}
