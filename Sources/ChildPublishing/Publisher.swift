import CGit2
import Foundation
import RunnerCore

/// What to publish and where.
public struct PublishRequest: Sendable {
    /// The directory holding the validated generated tree (becomes the work tree).
    public var repoDirectory: String
    /// The project's remote, if any (`RepositoryRemote`: http(s), ssh,
    /// `file://` or a local path), as the supervisor checked it.
    public var remoteURL: String?
    /// The branch committed to and pushed (`PublishPlan.branch`).
    public var branch: String
    /// The branch a new `branch` starts from (modes `branch` and
    /// `pull-request`); nil: a new `branch` starts a new history (mode `push`).
    public var baseBranch: String?
    public var remoteName: String
    public var authorName: String
    public var authorEmail: String
    public var jobId: String
    public var projectName: String
    public var token: String?
    /// Why no token was asked for this http(s) remote (its host is not one a
    /// token may go to: GIT_TOKEN_HOSTS); the push is then skipped, saying so.
    public var tokenWithheld: String?
    /// The hosts a token may be offered to (GIT_TOKEN_HOSTS): with any other
    /// remote the token is dropped, and the credential callback offers it to
    /// the URL it connects to only.
    public var tokenHosts: [TokenHost] = []
    /// The HTTP proxy for http(s) remotes (the job's egress proxy), or nil.
    public var proxyURL: String?
    /// Where to connect instead of `remoteURL` (a local tunnel to it), or nil.
    /// Reports and metadata still name `remoteURL`.
    public var connectURL: String?
    /// The job's egress proxy's answer to the git connection's CONNECT (the
    /// job child's git tunnel), read when a fetch or push fails.
    public var egressAnswer: (@Sendable () -> EgressAnswer?)?
    /// A stopped run's checkpoint (its partial work, onto its
    /// work-in-progress branch): the commit's first lines, saying why the
    /// run stopped. Its trailer is `checkpointTrailer`; an earlier
    /// checkpoint of the job does not stop it, and a remote without the base
    /// branch gets a new history on the branch, never the base branch. Nil: a finished job's commit.
    public var checkpointMessage: String?

    public init(repoDirectory: String, remoteURL: String?, branch: String, remoteName: String, authorName: String,
                authorEmail: String, jobId: String, projectName: String, token: String?) {
        self.repoDirectory = repoDirectory
        self.remoteURL = remoteURL
        self.branch = branch
        self.remoteName = remoteName
        self.authorName = authorName
        self.authorEmail = authorEmail
        self.jobId = jobId
        self.projectName = projectName
        self.token = token
    }
}

/// Commits a generated tree and pushes it (docs/contract.md, Stages): on top of the remote
/// branch when it exists, else as a new history; never twice for one job.
public enum Publisher {
    /// The commit trailer that ties a commit to its job.
    public static func trailer(_ jobId: String) -> String { "Architex-Job: \(jobId)" }
    /// The trailer of a checkpoint's commit (never taken for the job's own commit).
    public static func checkpointTrailer(_ jobId: String) -> String { "Architex-Checkpoint: \(jobId)" }

    /// Commits and pushes; `log` receives progress lines, `stage` the stage
    /// about to start: `committing` before the remote is fetched and the commit
    /// written, `pushing` right before the push (never when nothing is pushed).
    /// With `req.baseBranch` (publish modes `branch` and `pull-request`), a
    /// branch the remote lacks starts from the base branch's tip, and a
    /// repository without the base branch gets the commit on the base branch
    /// itself (its first commit: nothing to propose it against). Throws `JobFailure`.
    public static func publish(_ req: PublishRequest, log: (String) -> Void,
                               stage: (JobStage) -> Void = { _ in }) throws -> Published {
        stage(.committing)
        var out = Published()
        // Sub-phases for `metadata.timings`: gitInitMs, fetchMs, commitMs, pushMs.
        var clock = PhaseClock()
        func lap(_ name: String) {
            clock.lap(name)
            out.metadata.timings = clock.timings
        }
        var branch = req.branch
        func tracking(_ b: String) -> String { "refs/remotes/\(req.remoteName)/\(b)" }
        var pushable = false
        var skipReason: String?
        // The one classification of the URL (credentials in it are refused there: `invalid_remote`).
        let remote = try req.remoteURL.map(RepositoryRemote.init)
        // A token goes to a remote on a GIT_TOKEN_HOSTS host only, whoever handed it over.
        let token = req.tokenHosts.allow(remote) ? req.token : nil
        if let remote {
            out.metadata.repoUrl = remote.url
            switch remote.kind {
            case .http:
                if let why = req.tokenWithheld { skipReason = why }
                else if token == nil { skipReason = "GITHUB_TOKEN is not set; an http(s) remote needs it" }
                else { pushable = true }
            case .local: pushable = true
            case .ssh:
                skipReason = "ssh remotes are not pushed (the publisher pushes over http(s) and to local paths only)"
            }
        } else {
            skipReason = "the project has no githubRepoUrl"
        }
        do {
            let repo = try GitRepository(initAt: req.repoDirectory, branch: req.branch)
            // The commit's objects are written once, as a pack, after the push
            // (or whatever ends the publish): the repository stays whole for a
            // kept workspace, at two files instead of one per object.
            try repo.keepNewObjectsInMemory()
            lap("gitInitMs")
            defer {
                do { try repo.persistNewObjects() } catch { log("cannot write the commit's objects into the workspace: \(error)") }
            }
            var remote: GitRemote?
            var parent: git_oid?
            var base: git_oid?
            if pushable, let url = req.remoteURL {
                // The token is offered to the URL libgit2 connects to (the real one, or its local tunnel) only.
                let r = try GitRemote(repo: repo, name: req.remoteName, url: url, token: token,
                                      tokenURL: URLParts(req.connectURL ?? url))
                if let tunnel = req.connectURL { try r.connect(through: tunnel) }
                r.state.proxyURL = req.proxyURL
                remote = r
                let branches = [req.branch] + (req.baseBranch.map { $0 == req.branch ? [] : [$0] } ?? [])
                do {
                    try r.fetch(branches.map { "+refs/heads/\($0):\(tracking($0))" })
                } catch let e as GitError {
                    throw classify(e, r.state, pushing: false, egress: req.egressAnswer?())
                }
                parent = try repo.resolve(tracking(req.branch))
                base = try req.baseBranch.flatMap { try repo.resolve(tracking($0)) }
                out.baseSha = base?.hex
                lap("fetchMs")
                if req.checkpointMessage == nil, let tip = parent, let done = try repo.findCommit(from: tip, containing: trailer(req.jobId), limit: 200) {
                    log("commit \(done.hex) for this job is already on \(branch); not pushing again")
                    out.metadata.commitSha = done.hex
                    out.metadata.alreadyPushed = true
                    out.metadata.branch = branch
                    out.changes = try repo.changes(from: base, to: done)
                    return out
                }
                if parent == nil, let b = req.baseBranch {
                    if let base {
                        parent = base
                        log("remote has no \(branch); starting it from \(b) at \(base.hex)")
                    } else if req.checkpointMessage != nil {
                        log("remote has no \(b) nor \(branch): the checkpoint starts a new history on \(branch)")
                    } else {
                        branch = b
                        out.firstCommit = true
                        log("remote has no \(b) (an empty repository): its first commit goes onto \(b) itself")
                    }
                } else {
                    log(parent.map { "remote \(branch) is at \($0.hex); committing on top" }
                        ?? "remote has no \(branch); starting a new history")
                }
            }
            out.metadata.branch = branch
            let branchRef = "refs/heads/\(branch)"
            let (tree, files) = try repo.writeWorkingTree()
            out.metadata.files = files
            if let p = parent, try repo.treeOf(commit: p) == tree {
                log("generated tree equals \(branch) at \(p.hex); nothing to commit")
                out.metadata.commitSha = p.hex
                out.metadata.unchanged = true
                // A branch started from the base now would propose nothing: it is not pushed.
                out.branchExists = try repo.resolve(tracking(branch)) != nil
                out.changes = try repo.changes(from: base, to: p)
                return out
            }
            let message = req.checkpointMessage.map { "\($0)\n\n\(checkpointTrailer(req.jobId))\n" }
                ?? "Generate \(req.projectName) from its Architex architecture\n\n\(trailer(req.jobId))\n"
            let commit = try repo.commit(tree: tree, parent: parent, refName: branchRef, authorName: req.authorName,
                                         authorEmail: req.authorEmail, message: message)
            out.metadata.commitSha = commit.hex
            out.metadata.parentSha = parent?.hex
            out.changes = try repo.changes(from: base, to: commit)
            out.commitDiff = try repo.commitDiff(parent: parent, commit: commit)
            lap("commitMs")
            log("committed \(commit.hex) (\(files) files)")
            guard let remote else {
                out.metadata.pushSkipped = true
                out.metadata.pushSkippedReason = skipReason
                out.branchExists = false
                log("push skipped: \(skipReason ?? "")")
                return out
            }
            stage(.pushing)
            do {
                try remote.push("\(branchRef):\(branchRef)")
            } catch let e as GitError {
                throw classify(e, remote.state, pushing: true, egress: req.egressAnswer?())
            }
            if !remote.state.rejections.isEmpty {
                throw JobFailure(.pushRejected, "the remote rejected the push: " + remote.state.rejections.joined(separator: "; "))
            }
            lap("pushMs")
            log("pushed \(commit.hex) to \(branch)")
            return out
        } catch let e as GitError {
            throw JobFailure(.internal, "git: \(e.description)")
        }
    }
}
