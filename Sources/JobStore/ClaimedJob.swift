import Foundation
import RunnerCore

/// A job this runner holds the lease of.
public struct ClaimedJob: Sendable {
    /// The document after the claim, decoded once (every alias resolved).
    public let job: Job
    /// The lease token that fences every write of this attempt.
    public let token: String

    /// When the claim was sent: the lease runs LEASE_SECONDS from no later than this.
    public let leaseStart: ContinuousClock.Instant

    public init(document: JSONValue, token: String, leaseStart: ContinuousClock.Instant = .now) {
        job = Job(document)
        self.token = token
        self.leaseStart = leaseStart
    }

    /// `_id` exactly as stored (a string, or `{"$oid": …}`), written back as is.
    public var id: JSONValue { job.id }
    /// The whole document after the claim.
    public var document: JSONValue { job.document }
    public var idText: String { JobStore.idText(id) }
    public var attempt: Int { max(job.attempts, 1) }
    /// The project reference (`projectId` or `project_id`); also the project lock's key.
    public var projectId: JSONValue? { job.projectRef }
    public var cancelRequested: Bool { job.cancelRequested }
}

/// How an attempt ended, as written to the job document.
public enum JobOutcome: Sendable {
    case done(JobMetadata)
    case failed(JobFailure)
    /// A retryable failure: back to `pending` until `notBefore`.
    case retry(JobFailure, notBefore: Date)
    case cancelled(String)
    /// Shutdown: back to `pending` without counting the attempt.
    case requeued
}
