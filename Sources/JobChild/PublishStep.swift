import Foundation
import ChildGeneration
import ChildPublishing
import RunnerCore

/// The job's publishing, after the tree is validated (docs/publishing.md):
/// the push token, the commit and push by `PublishPlan` (onto the default
/// branch, or onto the publish branch started from it), and for
/// `pull-request` the pull request, opened or updated through GitHub's REST
/// API with the same token, through the job's egress proxy.
struct PublishStep {
    let ticket: JobTicket
    let spec: ArchitectureSpec
    let generated: GeneratorChain.Outcome
    let tree: TreeSummary
    let network: NetworkSetup
    let workspace: WorkspaceLayout
    let out: Emitter

    /// Publishes; returns the job's metadata (without the pipeline's timings).
    /// `measure` times the wait for the token. Each step and the new
    /// commit's changes go to the job's event stream.
    func run(measure: (String, () throws -> (String?, EgressReport?)) throws -> (String?, EgressReport?)) throws -> Published {
        do {
            let published = try publish(measure: measure)
            report(published)
            return published
        } catch let f as JobFailure {
            out.event(.publish(step: "failed", detail: "\(f.code.rawValue): \(f.message)"))
            throw f
        }
    }

    /// The publish's steps as events, and the new commit's files and diffs.
    func report(_ published: Published) {
        let m = published.metadata
        if let diff = published.commitDiff {
            out.event(.publish(step: "commit", detail: "\(m.files ?? 0) files", commit: diff.commit, branch: m.branch))
        }
        if m.alreadyPushed == true {
            out.event(.publish(step: "already_pushed", commit: m.commitSha, branch: m.branch))
        } else if m.unchanged == true {
            out.event(.publish(step: "unchanged", detail: "nothing to commit", commit: m.commitSha, branch: m.branch))
        } else if m.pushSkipped == true {
            out.event(.publish(step: "skipped", detail: m.pushSkippedReason, commit: m.commitSha, branch: m.branch))
        } else {
            out.event(.publish(step: "push", commit: m.commitSha, branch: m.branch))
        }
        if let pr = m.pullRequest {
            out.event(.publish(step: "pull_request", detail: "#\(pr.number) \(pr.action): \(pr.url)", commit: m.commitSha,
                               branch: m.branch))
        }
        for e in published.commitDiff?.events ?? [] { out.event(e) }
    }

    func publish(measure: (String, () throws -> (String?, EgressReport?)) throws -> (String?, EgressReport?)) throws -> Published {
        let s = ticket.settings
        let plan = ticket.publish ?? PublishPlan(mode: .push, branch: s.branch)
        // The one classification of the remote (the supervisor checked it against GIT_ALLOWED_SCHEMES and the roots).
        let remote = try ticket.repoURL.map(RepositoryRemote.init)
        // Only an http(s) push uses a token, and only on a GIT_TOKEN_HOSTS
        // host: for any other remote, or none, the child does not ask (one
        // round trip through the supervisor less; no token exists for it).
        let withheld = s.tokenHosts.refusal(remote)
        let (token, egress) = s.tokenHosts.allow(remote)
            ? try measure("tokenWaitMs") { try ChildInput.pushToken(emitter: out) } : (nil, nil)
        if let token { out.addSecret(token) }
        out.log("publish: \(plan.mode.rawValue) onto \(plan.branch) (chosen by \(plan.chosenBy))")
        var req = PublishRequest(repoDirectory: workspace.repo, remoteURL: ticket.repoURL, branch: plan.branch,
                                 remoteName: s.remoteName, authorName: s.authorName, authorEmail: s.authorEmail,
                                 jobId: ticket.jobId, projectName: ticket.projectName, token: token)
        req.tokenWithheld = withheld
        req.tokenHosts = s.tokenHosts
        if plan.mode == .branch { req.baseBranch = s.branch }
        if let tunnel = try network.gitTunnel(for: ticket.repoURL) {
            req.connectURL = tunnel.connectURL
            req.proxyURL = tunnel.proxyURL
            req.egressAnswer = { tunnel.lastAnswer }
        } else {
            req.proxyURL = network.proxyURL
        }
        var github: GitHubRepository?
        if plan.mode == .pullRequest {
            if let token, let remote {
                if let why = GitHubRepository.reason(remote: remote, apiURL: s.publish.apiURL) {
                    throw JobFailure(.pullRequestFailed, "publish mode pull-request: " + why, retryable: false)
                }
                let repo = try GitHubRepository(remote: remote, apiURL: s.publish.apiURL, token: token,
                                                proxy: network.proxyURL, log: out.log)
                let base = try repo.defaultBranch()
                out.log("pull request: \(remote.url) has the default branch \(base) (GitHub)")
                guard base != plan.branch else {
                    throw JobFailure(.pullRequestInvalid, "the publish branch \(plan.branch) is the repository's default "
                        + "branch: a pull request needs another PUBLISH_BRANCH")
                }
                if try repo.isProtected(plan.branch) {
                    throw JobFailure(.branchProtected, "GitHub protects \(plan.branch), the publish branch: choose another "
                        + "PUBLISH_BRANCH, or lift the branch's protection")
                }
                req.baseBranch = base
                github = repo
            } else {
                req.baseBranch = s.branch
                out.log("no pull request: " + (withheld ?? (remote == nil ? "the project has no repository"
                    : "no token for this remote")) + "; publishing as a branch")
            }
        }
        // Publisher reports `committing` and `pushing` as each begins.
        var published = try Publisher.publish(req, log: out.log, stage: out.stage)
        published.metadata.publishMode = published.firstCommit ? PublishMode.push.rawValue : plan.mode.rawValue
        guard let github, let base = req.baseBranch, let head = published.metadata.commitSha else { return published }
        guard !published.firstCommit, published.branchExists else {
            out.log(published.firstCommit ? "no pull request: the repository's first commit went onto \(base)"
                : "no pull request: \(plan.branch) would propose nothing against \(base)")
            return published
        }
        let pr = PullRequestDraft(title: title, body: body(published, base: base, egress: egress).markdown,
                                  draft: s.publish.draft, labels: s.publish.labels, reviewers: plan.reviewers)
        do {
            let info = try github.openOrUpdate(head: plan.branch, base: base, headSha: head, pr)
            out.log("pull request #\(info.number) \(info.action): \(info.url)")
            published.metadata.pullRequest = info
        } catch let f as JobFailure {
            // Both facts: the commit is on the branch (the next attempt finds it and only opens the pull request).
            throw JobFailure(f.code, "\(head) is on \(plan.branch), but the pull request failed: \(f.message)",
                             retryable: f.retryable)
        }
        return published
    }

    /// The pull request's title: the diagram's name.
    var title: String {
        let name = spec.name.unicodeScalars.filter { $0.properties.generalCategory != .control }
        return "Architex: " + String(String.UnicodeScalarView(name).prefix(200))
    }

    func body(_ published: Published, base: String, egress: EgressReport?) -> PullRequestBody {
        let s = ticket.settings
        var body = PullRequestBody(jobId: ticket.jobId, summary: readmeOpening(), generator: generated.generator.rawValue, base: base)
        var isDir: ObjCBool = false
        body.components = spec.components.map { c in
            let made = FileManager.default.fileExists(atPath: workspace.repo + "/" + c.slug, isDirectory: &isDir) && isDir.boolValue
            return .init(name: c.name, kind: c.entry.category.rawValue, technology: c.technology, folder: made ? c.slug : nil)
        }
        body.changes = published.changes
        body.validation = [
            "\(tree.files.count) files, \(tree.bytes) bytes: within JOB_MAX_FILES=\(s.maxFiles), "
                + "JOB_MAX_FILE_MB=\(s.maxFileMB) and JOB_MAX_TOTAL_MB=\(s.maxTotalMB)",
            "`README.md` at the root; no links, special files or `.git` entries (the tree rules)",
        ]
        body.egress = s.network == .proxy ? (egress ?? EgressReport()) : nil
        // The proxy's metering where there is one, else the agent's own report.
        body.usage = egress?.metered?.bounded ?? generated.agent
        // The id is the app's (a string _id may hold anything): one escaped path segment.
        body.dashboardLink = s.publish.dashboardURL.map { $0 + "/jobs/" + GitHubRepository.escape(ticket.jobId) }
        return body
    }

    /// The generated README's opening (the scaffold's plan; an agent's own account).
    func readmeOpening() -> String {
        guard let text = try? String(contentsOfFile: workspace.repo + "/README.md", encoding: .utf8) else { return "" }
        return String(text.prefix(PullRequestBody.maxSummary))
    }
}
