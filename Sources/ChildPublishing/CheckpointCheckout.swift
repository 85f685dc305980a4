import CGit2
import Foundation
import RunnerCore

/// The tree of a stopped run's checkpoint, put back for a retried job's next
/// attempt (RESUME_FROM_CHECKPOINT=true) before its agent runs: the
/// work-in-progress branch is fetched from the project's remote into a
/// throw-away repository in the work tree, the checkpoint's commit checked
/// out there, and the repository removed, so the agent finds plain files.
public enum CheckpointCheckout {
    /// Puts the tree of `commitSha` (which the fetched `req.branch` must
    /// hold) into `req.repoDirectory`, which is empty; returns how many files.
    /// Throws `JobFailure` (the caller starts from nothing then).
    public static func restore(_ req: PublishRequest, commitSha: String, log: (String) -> Void) throws -> Int {
        guard let url = req.remoteURL else { throw JobFailure(.pushFailed, "the project has no remote") }
        let gitDir = req.repoDirectory + "/.git"
        defer { try? FileManager.default.removeItem(atPath: gitDir) }
        do {
            let repo = try GitRepository(initAt: req.repoDirectory, branch: req.branch)
            let remote = try GitRemote(repo: repo, name: req.remoteName, url: url, token: req.token,
                                       tokenURL: URLParts(req.connectURL ?? url))
            if let tunnel = req.connectURL { try remote.connect(through: tunnel) }
            remote.state.proxyURL = req.proxyURL
            let tracking = "refs/remotes/\(req.remoteName)/\(req.branch)"
            do {
                try remote.fetch(["+refs/heads/\(req.branch):\(tracking)"])
            } catch let e as GitError {
                throw Publisher.classify(e, remote.state, pushing: false, egress: req.egressAnswer?())
            }
            guard let tip = try repo.resolve(tracking) else {
                throw JobFailure(.pushFailed, "the remote has no branch \(req.branch)")
            }
            if tip.hex != commitSha { log("checkpoint: \(req.branch) is at \(tip.hex) now; starting from \(commitSha)") }
            let files = try repo.checkout(commitHex: commitSha)
            return files
        } catch let e as GitError {
            throw JobFailure(.internal, "git: \(e.description)")
        }
    }
}

extension GitRepository {
    /// Writes the tree of commit `commitHex` into the work tree (forced) and
    /// returns its number of files. The commit must be in the object store.
    func checkout(commitHex: String) throws -> Int {
        var oid = git_oid()
        try git("parse \(commitHex)", git_oid_fromstr(&oid, commitHex))
        return try withHandle { handle in
            var commit: OpaquePointer?
            try git("lookup commit \(commitHex)", git_object_lookup(&commit, handle, &oid, GIT_OBJECT_COMMIT))
            defer { git_object_free(commit) }
            var opts = git_checkout_options()
            try git("checkout options", git_checkout_options_init(&opts, UInt32(GIT_CHECKOUT_OPTIONS_VERSION)))
            opts.checkout_strategy = GIT_CHECKOUT_FORCE.rawValue
            try git("checkout", git_checkout_tree(handle, commit, &opts))
            var tree: OpaquePointer?
            try git("lookup tree", git_commit_tree(&tree, commit))
            defer { git_tree_free(tree) }
            var count = 0
            let counted = withUnsafeMutablePointer(to: &count) { counter in
                git_tree_walk(tree, GIT_TREEWALK_PRE, { _, entry, payload in
                    if git_tree_entry_type(entry) == GIT_OBJECT_BLOB {
                        payload!.assumingMemoryBound(to: Int.self).pointee += 1
                    }
                    return 0
                }, counter)
            }
            try git("walk tree", counted)
            return count
        }
    }
}
