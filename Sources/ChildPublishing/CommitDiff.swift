import CGit2
import Foundation
import RunnerCore

/// The published commit against its parent (or against nothing, for a
/// first commit): its files and the text diff of each, within byte limits,
/// for the job's `changes` and `diff` events (the dashboard's "changes"
/// view, which has no repository of its own). Computed in the job child,
/// the one process with the repository; the paths and text are the agent's,
/// redacted and bounded again by the child's `Emitter`.
public struct CommitDiff: Sendable, Equatable {
    public var commit: String
    public var parent: String?
    /// At most `JobEvent.maxArrayEntries` files; `total` counts all.
    public var files: [JobEvent.ChangedFile] = []
    public var total = 0
    /// Text diffs, in the files' order, while `maxTotalBytes` lasts; each at most `JobEvent.maxTextBytes`.
    public var diffs: [(path: String, text: String, bytes: Int)] = []

    /// The most diff bytes one job's events carry in all.
    public static let maxTotalBytes = 256 * 1024
    /// The most files whose diff is carried.
    public static let maxDiffs = 100
    /// The largest file (either side) whose diff is made: its patch is built
    /// whole in memory before it is cut to `JobEvent.maxTextBytes`, so a
    /// larger one (the agent's, of any size) gets none.
    public static let maxSourceBytes = 4 * JobEvent.maxTextBytes

    public static func == (a: CommitDiff, b: CommitDiff) -> Bool {
        a.commit == b.commit && a.parent == b.parent && a.files == b.files && a.total == b.total
            && a.diffs.map(\.path) == b.diffs.map(\.path) && a.diffs.map(\.text) == b.diffs.map(\.text)
    }

    /// The events for the job's stream: one `changes`, then one `diff` per text file carried.
    public var events: [JobEvent] {
        [.changes(commit: commit, parent: parent, files: files)]
            + diffs.map { .diff(path: $0.path, text: $0.text, bytes: $0.bytes) }
    }
}

extension GitRepository {
    /// Commit `commit` against `parent` (nil: against an empty tree).
    func commitDiff(parent: git_oid?, commit: git_oid) throws -> CommitDiff {
        var out = CommitDiff(commit: commit.hex, parent: parent?.hex)
        let newTree = try lookupTree(of: commit)
        defer { git_tree_free(newTree) }
        let oldTree: OpaquePointer? = try parent.flatMap(lookupTree(of:))
        defer { if let oldTree { git_tree_free(oldTree) } }
        var diff: OpaquePointer?
        try withHandle { h in try git("diff", git_diff_tree_to_tree(&diff, h, oldTree, newTree, nil)) }
        defer { git_diff_free(diff) }
        let count = git_diff_num_deltas(diff)
        out.total = count
        var budget = CommitDiff.maxTotalBytes
        for i in 0..<min(count, JobEvent.maxArrayEntries) {
            guard var delta = git_diff_get_delta(diff, i)?.pointee else { continue }
            let status: String
            switch delta.status {
            case GIT_DELTA_ADDED: status = "added"
            case GIT_DELTA_DELETED: status = "deleted"
            case GIT_DELTA_RENAMED: status = "renamed"
            default: status = "modified"
            }
            var text: String?
            if budget > 0, out.diffs.count < CommitDiff.maxDiffs, !isLarge(delta) {
                var patch: OpaquePointer?
                if git_patch_from_diff(&patch, diff, i) == 0, let patch {
                    defer { git_patch_free(patch) }
                    delta = git_patch_get_delta(patch).pointee
                    if delta.flags & GIT_DIFF_FLAG_BINARY.rawValue == 0 {
                        var buf = git_buf()
                        if git_patch_to_buf(&buf, patch) == 0, let ptr = buf.ptr {
                            text = String(decoding: UnsafeRawBufferPointer(start: ptr, count: buf.size), as: UTF8.self)
                        }
                        git_buf_dispose(&buf)
                    }
                }
            }
            // The patch's delta has the sizes (a tree-to-tree diff's own has none).
            let file = status == "deleted" ? delta.old_file : delta.new_file
            let path = file.path.map { String(cString: $0) } ?? "?"
            var binary = delta.flags & GIT_DIFF_FLAG_BINARY.rawValue != 0
            var size = Int(file.size)
            if size == 0, let blob = blobInfo(file.id) { (size, binary) = blob }
            out.files.append(.init(path: path, status: status, bytes: size, binary: binary))
            if let text {
                let bytes = text.utf8.count
                let kept = LogBounds.clip(text, bytes: min(JobEvent.maxTextBytes, budget))
                budget -= kept.utf8.count
                out.diffs.append((path, kept, bytes))
            }
        }
        return out
    }

    /// Whether either side of `delta` is over `CommitDiff.maxSourceBytes`
    /// (a tree-to-tree delta has no sizes: its blobs' are read; one that
    /// cannot be read counts as large).
    private func isLarge(_ delta: git_diff_delta) -> Bool {
        for file in [delta.old_file, delta.new_file] {
            var id = file.id
            // The side a file was added or deleted on has no blob.
            if git_oid_is_zero(&id) != 0 { continue }
            guard let (size, _) = blobInfo(file.id) else { return true }
            if size > CommitDiff.maxSourceBytes { return true }
        }
        return false
    }

    /// A blob's size and whether libgit2 deems it binary (a file whose patch was not made).
    private func blobInfo(_ id: git_oid) -> (Int, Bool)? {
        var blob: OpaquePointer?
        var oid = id
        guard withHandle({ git_blob_lookup(&blob, $0, &oid) }) == 0, let blob else { return nil }
        defer { git_blob_free(blob) }
        return (Int(git_blob_rawsize(blob)), git_blob_is_binary(blob) != 0)
    }
}
