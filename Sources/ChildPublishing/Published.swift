import CGit2
import Foundation
import RunnerCore

/// What `Publisher.publish` did: the job's metadata and what the branch
/// changes against its base (for a pull request's body).
public struct Published: Sendable {
    public var metadata = JobMetadata()
    /// The base branch's tip when the remote had one.
    public var baseSha: String?
    /// The files the branch changes against its base (all of them against
    /// nothing), at most `FileChange.maxListed`; `changesTotal` counts all.
    public var changes = FileChanges()
    /// False when the branch is not on the remote (nothing was pushed).
    public var branchExists = true
    /// The repository had no base branch: the commit went onto it (no pull request).
    public var firstCommit = false
    /// The new commit against its parent, for the job's `changes` and `diff` events (nil: no new commit).
    public var commitDiff: CommitDiff?
}

/// One file a branch adds, modifies, deletes or renames against its base.
public struct FileChange: Sendable, Equatable {
    public enum Kind: String, Sendable { case added, modified, deleted, renamed }
    public var path: String
    public var kind: Kind
}

/// The files a branch changes, at most `maxListed`, and how many in all.
public struct FileChanges: Sendable, Equatable {
    public var listed: [FileChange] = []
    public var total = 0
    /// The most listed (a pull request's body stays well under GitHub's 65,536 characters).
    public static let maxListed = 300
}

extension GitRepository {
    /// The files that differ between commit `from`'s tree (nil: none) and commit `to`'s.
    func changes(from: git_oid?, to: git_oid) throws -> FileChanges {
        let newTree = try lookupTree(of: to)
        defer { git_tree_free(newTree) }
        let oldTree: OpaquePointer? = try from.flatMap(lookupTree(of:))
        defer { if let oldTree { git_tree_free(oldTree) } }
        var diff: OpaquePointer?
        try withHandle { h in try git("diff", git_diff_tree_to_tree(&diff, h, oldTree, newTree, nil)) }
        defer { git_diff_free(diff) }
        var result = FileChanges()
        let count = git_diff_num_deltas(diff)
        result.total = count
        for i in 0..<min(count, FileChanges.maxListed) {
            guard let delta = git_diff_get_delta(diff, i)?.pointee else { continue }
            let kind: FileChange.Kind
            switch delta.status {
            case GIT_DELTA_ADDED: kind = .added
            case GIT_DELTA_DELETED: kind = .deleted
            case GIT_DELTA_RENAMED: kind = .renamed
            default: kind = .modified
            }
            let file = kind == .deleted ? delta.old_file : delta.new_file
            result.listed.append(FileChange(path: file.path.map { String(cString: $0) } ?? "?", kind: kind))
        }
        return result
    }

    /// Commit `commit`'s tree (the caller frees it).
    func lookupTree(of commit: git_oid) throws -> OpaquePointer? {
        var c: OpaquePointer?
        var id = commit
        try withHandle { h in try git("lookup commit", git_commit_lookup(&c, h, &id)) }
        defer { git_commit_free(c) }
        var tree: OpaquePointer?
        try git("commit tree", git_commit_tree(&tree, c))
        return tree
    }
}
