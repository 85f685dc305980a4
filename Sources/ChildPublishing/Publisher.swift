import CGit2
import Foundation
import RunnerCore

/// What to publish and where.
public struct PublishRequest: Sendable {
    /// The directory holding the validated generated tree (becomes the work tree).
    public var repoDirectory: String
    /// The project's remote, if any: http(s), `file://` or a local path.
    public var remoteURL: String?
    public var branch: String
    public var remoteName: String
    public var authorName: String
    public var authorEmail: String
    public var jobId: String
    public var projectName: String
    public var token: String?
    /// The HTTP proxy for http(s) remotes (the job's egress proxy), or nil.
    public var proxyURL: String?
    /// Where to connect instead of `remoteURL` (a local tunnel to it), or nil.
    /// Reports and metadata still name `remoteURL`.
    public var connectURL: String?

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

    /// The kind of remote a URL names.
    public enum RemoteKind: Equatable, Sendable {
        case http, local(path: String), unsupported
    }

    /// Classifies `url`: http(s), a local path (`file://` or absolute), or unsupported.
    public static func kind(of url: String) -> RemoteKind {
        let lower = url.lowercased()
        if lower.hasPrefix("https://") || lower.hasPrefix("http://") { return .http }
        if lower.hasPrefix("file://") { return .local(path: String(url.dropFirst(7))) }
        if url.hasPrefix("/") { return .local(path: url) }
        return .unsupported
    }

    /// `url` without userinfo (safe to record).
    public static func sanitized(_ url: String) -> String {
        guard let r = url.range(of: "://"), let at = url[r.upperBound...].firstIndex(of: "@"),
              !url[r.upperBound..<at].contains("/") else { return url }
        return String(url[..<r.upperBound]) + String(url[url.index(after: at)...])
    }

    /// Commits and pushes; `log` receives progress lines, `stage` the stage
    /// about to start: `committing` before the remote is fetched and the commit
    /// written, `pushing` right before the push (never when nothing is pushed).
    /// Throws `JobFailure`.
    public static func publish(_ req: PublishRequest, log: (String) -> Void,
                               stage: (JobStage) -> Void = { _ in }) throws -> JobMetadata {
        stage(.committing)
        var meta = JobMetadata()
        // Sub-phases for `metadata.timings`: gitInitMs, fetchMs, commitMs, pushMs.
        var mark = ContinuousClock.now
        func lap(_ name: String) {
            let now = ContinuousClock.now
            let d = (now - mark).components
            meta.timings = (meta.timings ?? [:]).merging([name: Int(d.seconds * 1000 + d.attoseconds / 1_000_000_000_000_000)]) { $1 }
            mark = now
        }
        meta.branch = req.branch
        let branchRef = "refs/heads/\(req.branch)"
        let trackingRef = "refs/remotes/\(req.remoteName)/\(req.branch)"
        var pushable = false
        var skipReason: String?
        if let url = req.remoteURL {
            meta.repoUrl = sanitized(url)
            if sanitized(url) != url {
                throw JobFailure(.invalidSpec, "the project's repository URL must not embed credentials")
            }
            switch kind(of: url) {
            case .http:
                if req.token == nil { skipReason = "GITHUB_TOKEN is not set; an http(s) remote needs it" }
                else { pushable = true }
            case .local: pushable = true
            case .unsupported:
                skipReason = "unsupported remote URL scheme (only http(s), file:// and local paths)"
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
            if pushable, let url = req.remoteURL {
                let r = try GitRemote(repo: repo, name: req.remoteName, url: url, token: req.token)
                if let tunnel = req.connectURL { try r.connect(through: tunnel) }
                r.state.proxyURL = req.proxyURL
                remote = r
                do {
                    try r.fetch("+\(branchRef):\(trackingRef)")
                } catch let e as GitError {
                    throw classify(e, r.state, pushing: false)
                }
                parent = try repo.resolve(trackingRef)
                lap("fetchMs")
                if let tip = parent, let done = try repo.findCommit(from: tip, containing: trailer(req.jobId), limit: 200) {
                    log("commit \(done.hex) for this job is already on \(req.branch); not pushing again")
                    meta.commitSha = done.hex
                    meta.alreadyPushed = true
                    return meta
                }
                log(parent.map { "remote \(req.branch) is at \($0.hex); committing on top" }
                    ?? "remote has no \(req.branch); starting a new history")
            }
            let (tree, files) = try repo.writeWorkingTree()
            meta.files = files
            if let p = parent, try repo.treeOf(commit: p) == tree {
                log("generated tree equals \(req.branch) at \(p.hex); nothing to commit")
                meta.commitSha = p.hex
                meta.unchanged = true
                return meta
            }
            let message = "Generate \(req.projectName) from its Architex architecture\n\n\(trailer(req.jobId))\n"
            let commit = try repo.commit(tree: tree, parent: parent, refName: branchRef, authorName: req.authorName,
                                         authorEmail: req.authorEmail, message: message)
            meta.commitSha = commit.hex
            meta.parentSha = parent?.hex
            lap("commitMs")
            log("committed \(commit.hex) (\(files) files)")
            guard let remote else {
                meta.pushSkipped = true
                meta.pushSkippedReason = skipReason
                log("push skipped: \(skipReason ?? "")")
                return meta
            }
            stage(.pushing)
            do {
                try remote.push("\(branchRef):\(branchRef)")
            } catch let e as GitError {
                throw classify(e, remote.state, pushing: true)
            }
            if !remote.state.rejections.isEmpty {
                throw JobFailure(.pushRejected, "the remote rejected the push: " + remote.state.rejections.joined(separator: "; "))
            }
            lap("pushMs")
            log("pushed \(commit.hex) to \(req.branch)")
            return meta
        } catch let e as GitError {
            throw JobFailure(.internal, "git: \(e.description)")
        }
    }

    /// Maps a libgit2 network error to the job error codes.
    static func classify(_ e: GitError, _ state: RemoteCallbackState, pushing: Bool) -> JobFailure {
        let text = e.message.lowercased()
        if state.authExhausted || e.code == GIT_EAUTH.rawValue || text.contains("401") || text.contains("403")
            || text.contains("authentication") || text.contains("credentials") {
            return JobFailure(.pushAuthFailed, "authentication to the remote failed: \(e.message)")
        }
        if e.code == GIT_ENONFASTFORWARD.rawValue || text.contains("fast-forward") || text.contains("fastforward")
            || text.contains("rejected") {
            return JobFailure(.pushRejected, "the remote branch moved: \(e.message)")
        }
        return JobFailure(.pushFailed, "\(pushing ? "push" : "fetch") failed: \(e.message)")
    }
}
