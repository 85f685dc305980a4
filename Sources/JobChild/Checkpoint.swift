#if canImport(Glibc)
import Glibc
#endif
import Foundation
import ChildGeneration
import ChildPublishing
import RunnerCore

/// A stopped run's partial work, never lost (docs/budgets.md, "Checkpoints").
/// When the supervisor stops the job for its budget, its timeout or a cancel
/// (a `ChildStop` line on stdin, CHECKPOINT_ON) while it generates, this
/// takes the tree over (`StopGate`: the pipeline's thread parks), kills every
/// process of the job, checks the tree with the finished job's rules, commits
/// it with a message saying why the run stopped and pushes it to the job's
/// work-in-progress branch (CHECKPOINT_BRANCH), never the project's, with the
/// push token the supervisor hands over once no agent process is left
/// (`PushTokenHandOver`). It reports a `checkpoint` event and the child exits
/// without a result: the supervisor's stop decides the outcome.
struct Checkpoint: Sendable {
    let ticket: JobTicket
    let plan: CheckpointPlan
    let out: Emitter

    var workspace: WorkspaceLayout { WorkspaceLayout(ticket.workspace) }

    /// From now on a stop line runs a checkpoint on a thread of its own (the
    /// stdin watcher goes on reading: the push token comes there).
    func arm() {
        let checkpoint = self
        ChildInput.onStop.withLock {
            $0 = { stop in
                let thread = Thread { checkpoint.run(stop) }
                thread.stackSize = 8 << 20 // libgit2's push
                thread.start()
            }
        }
    }

    /// Takes over, checkpoints if it may, and ends the child.
    func run(_ stop: ChildStop) -> Never {
        let reason = stop.stop.reason
        out.emit(.stopping)
        guard StopGate.claimForStop() else {
            // Past generation the tree is the pipeline's: the stop is a plain one.
            out.log("stopped (\(reason.rawValue)) while publishing: no checkpoint")
            AgentReaper.killAll()
            exit(0)
        }
        let killed = AgentReaper.killAll()
        let left = AgentReaper.remaining()
        out.log("checkpoint (\(reason.rawValue)): the job's processes ended" + (killed != 0 ? "" : " (none was running)")
            + (left > 0 ? "; \(left) still listed" : ""))
        do {
            if let info = try commitAndPush(stop) {
                out.log("checkpoint: \(info.whereText)")
                out.emit(.checkpoint(info))
            }
        } catch let failure as JobFailure {
            out.log("checkpoint failed: \(failure.code.rawValue): \(failure.message)")
        } catch {
            out.log("checkpoint failed: \(error)")
        }
        AgentReaper.killAll()
        exit(0)
    }

    /// The tree checked, committed and pushed; nil when there is nothing to keep.
    func commitAndPush(_ stop: ChildStop) throws -> CheckpointInfo? {
        let repo = workspace.repo
        let own = AgentCLIRun.removeOwnFiles(repo: repo)
        if !own.isEmpty { out.log("checkpoint: left out the agent's own files " + own.joined(separator: ", ")) }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: repo)) ?? []
        guard !entries.isEmpty else {
            out.log("checkpoint: the agent wrote nothing; nothing to keep")
            return nil
        }
        // The finished job's tree rules (links, special files, `.git`, JOB_MAX_*): a tree
        // that breaks them is not pushed. Completeness (README.md) is not asked of partial work.
        let summary = try TreeScanner.scan(repo, limits: TreeLimits(ticket.settings))
        out.log("checkpoint: \(summary.files.count) files, \(summary.bytes) bytes pass the tree rules")
        let s = ticket.settings
        let remote = try ticket.repoURL.map(RepositoryRemote.init)
        guard s.tokenHosts.refusal(remote) == nil else {
            out.log("checkpoint: not pushed: " + (s.tokenHosts.refusal(remote) ?? ""))
            return nil
        }
        let (token, _) = s.tokenHosts.allow(remote) ? try ChildInput.pushToken(emitter: out) : (nil, nil)
        if let token { out.addSecret(token) }
        var req = PublishRequest(repoDirectory: repo, remoteURL: ticket.repoURL, branch: plan.branch,
                                 remoteName: s.remoteName, authorName: s.authorName, authorEmail: s.authorEmail,
                                 jobId: ticket.jobId, projectName: ticket.projectName, token: token)
        req.tokenHosts = s.tokenHosts
        req.baseBranch = s.branch
        req.checkpointMessage = Self.message(jobId: ticket.jobId, stop: stop)
        try Self.route(&req, ticket: ticket)
        let published = try Publisher.publish(req, log: { out.log("checkpoint: " + $0) })
        guard let sha = published.metadata.commitSha, published.metadata.pushSkipped != true else {
            out.log("checkpoint: not pushed: " + (published.metadata.pushSkippedReason ?? "no commit"))
            return nil
        }
        if published.metadata.unchanged == true && !published.branchExists {
            out.log("checkpoint: the partial tree equals \(s.branch); nothing to keep")
            return nil
        }
        return CheckpointInfo(branch: published.metadata.branch ?? plan.branch, commitSha: sha, reason: stop.stop.reason)
    }

    /// The commit's message: why the run stopped.
    static func message(jobId: String, stop: ChildStop) -> String {
        let why = LogBounds.clip(stop.stop.message, bytes: 2048)
        return "agent-runner: partial work of job \(jobId), stopped (\(stop.stop.reason.rawValue))\n\n"
            + "The run stopped before it finished: \(why). This is what the agent had written then; "
            + "it passed the job's tree rules but was not validated as a finished tree."
    }

    /// The way to the remote: the git tunnel through the egress proxy, or the proxy URL.
    static func route(_ req: inout PublishRequest, ticket: JobTicket) throws {
        let network = NetworkSetup(settings: ticket.settings, workspace: ticket.workspace)
        if let tunnel = try network.gitTunnel(for: ticket.repoURL) {
            req.connectURL = tunnel.connectURL
            req.proxyURL = tunnel.proxyURL
            req.egressAnswer = { tunnel.lastAnswer }
        } else {
            req.proxyURL = network.proxyURL
        }
    }
}
