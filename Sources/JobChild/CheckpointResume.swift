import Foundation
import ChildGeneration
import ChildPublishing
import RunnerCore

extension Checkpoint {
    /// A retried job's next attempt starts from its checkpoint's tree
    /// (RESUME_FROM_CHECKPOINT=true: the ticket's `resumeFrom`), put into
    /// `repo/` before the agent runs. The fetch's token, when the remote
    /// needs one, is handed over as for a push: now, while no agent process
    /// exists (`PushTokenHandOver` checks), and it is dropped before the agent
    /// starts. A tree that cannot be had or breaks the tree rules is removed:
    /// the run starts from nothing, saying why.
    func resume() {
        guard let from = plan.resumeFrom else { return }
        let repo = workspace.repo
        do {
            let s = ticket.settings
            let remote = try ticket.repoURL.map(RepositoryRemote.init)
            if let why = s.tokenHosts.refusal(remote) { throw JobFailure(.pushAuthFailed, why) }
            let (token, _) = s.tokenHosts.allow(remote) ? try ChildInput.pushToken(emitter: out) : (nil, nil)
            if let token { out.addSecret(token) }
            var req = PublishRequest(repoDirectory: repo, remoteURL: ticket.repoURL, branch: from.branch,
                                     remoteName: s.remoteName, authorName: s.authorName, authorEmail: s.authorEmail,
                                     jobId: ticket.jobId, projectName: ticket.projectName, token: token)
            req.tokenHosts = s.tokenHosts
            try Self.route(&req, ticket: ticket)
            let files = try CheckpointCheckout.restore(req, commitSha: from.commitSha, log: out.log)
            let summary = try TreeScanner.scan(repo, limits: TreeLimits(s))
            out.log("resumed from the checkpoint on \(from.branch) at \(from.commitSha) (\(from.reason.rawValue)): "
                + "\(files) files, \(summary.bytes) bytes")
        } catch {
            let why = (error as? JobFailure).map { "\($0.code.rawValue): \($0.message)" } ?? "\(error)"
            out.log("cannot resume from the checkpoint on \(from.branch) at \(from.commitSha): \(why); starting from nothing")
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: repo)) ?? [] {
                try? FileManager.default.removeItem(atPath: repo + "/" + entry)
            }
        }
    }
}
