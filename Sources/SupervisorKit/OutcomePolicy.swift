#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import RunnerCore

/// Why the supervisor stopped a child early.
public enum StopReason: Sendable, Equatable {
    case cancelled, timeout, leaseLost, shutdown
    /// The job's egress proxy refused a model call for the budget (`RunFacts.failure` says which).
    case budgetExceeded

    /// The checkpoint reason of this stop (CHECKPOINT_ON), nil for one that never checkpoints.
    public var checkpointReason: CheckpointReason? {
        switch self {
        case .budgetExceeded: .budget
        case .timeout: .timeout
        case .cancelled: .cancel
        case .leaseLost, .shutdown: nil
        }
    }
}

/// Everything the supervisor saw of one run of a job, once its child is gone
/// (or never started): the facts the job's outcome is decided from.
public struct RunFacts: Sendable {
    /// The child's `result` event, if it sent one.
    public var result: ChildEvent?
    /// How the child ended; nil when no child ran (a failure before the spawn).
    public var exit: ExitStatus?
    /// Why the supervisor stopped the child early, if it did.
    public var stop: StopReason?
    /// A failure before or around the child (launch, push token hand-over).
    public var failure: JobFailure?
    /// Forks the job's pids cgroup refused (JOB_MAX_PROCESSES reached).
    public var refusedForks: Int
    /// A line on the child's stdout that is no protocol event (the child was
    /// killed for it at once).
    public var protocolFailure: JobFailure?
    /// The partial work the child pushed to its work-in-progress branch
    /// after the supervisor stopped it (its `checkpoint` event).
    public var checkpoint: CheckpointInfo?

    public init(result: ChildEvent? = nil, exit: ExitStatus? = nil, stop: StopReason? = nil,
                failure: JobFailure? = nil, refusedForks: Int = 0, protocolFailure: JobFailure? = nil,
                checkpoint: CheckpointInfo? = nil) {
        self.checkpoint = checkpoint
        self.result = result
        self.exit = exit
        self.stop = stop
        self.failure = failure
        self.refusedForks = refusedForks
        self.protocolFailure = protocolFailure
    }
}

/// The one place where a job's outcome is decided (docs/architecture.md,
/// "Where each error code is decided"). Pure: no process, clock or database;
/// `JobRunner` gathers the `RunFacts` and writes what this returns.
public struct OutcomePolicy: Sendable {
    /// The attempt that ran (1-based) and the job's limit (its `maxAttempts`, else JOB_MAX_ATTEMPTS).
    public var attempt: Int
    public var maxAttempts: Int
    /// The limits named in messages.
    public var timeoutSeconds: Int
    public var cpuSeconds: Int
    public var maxTotalMB: Int
    public var maxProcesses: Int

    public init(attempt: Int, maxAttempts: Int, timeoutSeconds: Int, cpuSeconds: Int, maxTotalMB: Int, maxProcesses: Int) {
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.cpuSeconds = cpuSeconds
        self.maxTotalMB = maxTotalMB
        self.maxProcesses = maxProcesses
    }

    /// What a decided run becomes, before the retry's date is drawn.
    public enum Decision: Sendable, Equatable {
        case done(JobMetadata)
        case failed(JobFailure)
        case retry(JobFailure)
        case cancelled(String)
        case requeued
        /// The lease was lost: nothing more may be written for this job.
        case nothing
    }

    /// The job's outcome, in this order:
    /// 1. a lost lease writes nothing (another runner may own the job);
    /// 2. a failure the supervisor saw (the launch, the push token) while it
    ///    did not stop the child: refused forks, else that failure;
    /// 3. a success the child reported wins over everything later (a cancel,
    ///    the timeout, shutdown, refused forks): its commit is on the remote;
    /// 4. a malformed protocol line, when the supervisor did not stop the
    ///    child otherwise;
    /// 5. the supervisor's own stop: cancelled, or requeued at shutdown, or
    ///    the budget spent (`budget_exceeded`, its message in `failure`);
    ///    a checkpoint (and the timeout's, at 7.) is named in the message;
    /// 6. refused forks in the job's pids cgroup: `resource_limit` (a fork
    ///    bomb is named as such even when it also ran into the timeout);
    /// 7. the timeout;
    /// 8. the child's reported failure;
    /// 9. how the child died without a result.
    /// A failure is retried while it is retryable and attempts remain.
    public func decide(_ facts: RunFacts) -> Decision {
        if facts.stop == .leaseLost { return .nothing }
        // A failure the supervisor saw (the launch, a withheld push token)
        // outranks the child's own report: a child denied its token may
        // still report a success, with the push skipped.
        if facts.stop == nil, let failure = facts.failure {
            return facts.refusedForks > 0 ? fail(forkFailure(facts.refusedForks)) : fail(failure)
        }
        if case .succeeded(let meta)? = facts.result { return .done(meta) }
        if facts.stop == nil, let failure = facts.protocolFailure { return fail(failure) }
        // Where a stopped run's partial work is, said in its message.
        let kept = facts.checkpoint.map { "; " + $0.whereText } ?? ""
        if facts.stop == .cancelled { return .cancelled("cancelled while running" + kept) }
        if facts.stop == .shutdown { return .requeued }
        if facts.stop == .budgetExceeded {
            var failure = facts.failure ?? JobFailure(.budgetExceeded, "the job's budget was spent")
            failure.message += kept
            return fail(failure)
        }
        if facts.refusedForks > 0 { return fail(forkFailure(facts.refusedForks)) }
        if facts.stop == .timeout {
            return fail(JobFailure(.timeout, "the job ran longer than JOB_TIMEOUT_SECONDS=\(timeoutSeconds)" + kept))
        }
        if case .failed(let failure)? = facts.result { return fail(failure) }
        guard let exit = facts.exit else {
            return fail(JobFailure(.internal, "the job ended with neither a child nor a failure"))
        }
        return fail(Self.death(exit, cpuSeconds: cpuSeconds, maxTotalMB: maxTotalMB))
    }

    /// Refused forks in the job's pids cgroup, as a failure.
    func forkFailure(_ refused: Int) -> JobFailure {
        JobFailure(.resourceLimit, "process limit JOB_MAX_PROCESSES=\(maxProcesses) reached: "
            + "the job tried to start more processes \(refused) time(s)")
    }

    /// Retry or fail, by the failure's retryability and the attempts left.
    public func fail(_ failure: JobFailure) -> Decision {
        failure.retryable && attempt < maxAttempts ? .retry(failure) : .failed(failure)
    }

    /// How a child that died without a result is classified.
    static func death(_ exit: ExitStatus, cpuSeconds: Int, maxTotalMB: Int) -> JobFailure {
        switch exit {
        case .signaled(SIGSYS):
            JobFailure(.sandboxViolation, "the child was killed by SIGSYS: a forbidden system call")
        case .signaled(SIGXCPU):
            JobFailure(.resourceLimit, "CPU limit JOB_CPU_SECONDS=\(cpuSeconds) exceeded (SIGXCPU)")
        case .signaled(SIGXFSZ):
            JobFailure(.resourceLimit, "file size limit exceeded: RLIMIT_FSIZE = JOB_MAX_TOTAL_MB+64 = "
                + "\(maxTotalMB + 64) MB (SIGXFSZ)")
        default:
            JobFailure(.childCrashed, "the job child ended without a result: \(exit)")
        }
    }

    /// The retry's backoff: `min(attempt⁴, 3600)` seconds plus a jitter of up
    /// to a quarter of that and 1 s (`jitter` in 0...1).
    public static func retryDelay(attempt: Int, jitter: Double) -> TimeInterval {
        let base = min(pow(Double(attempt), 4), 3600)
        return base + jitter * (base / 4 + 1)
    }

    /// The decision as the job store writes it; a retry's date drawn now.
    public static func outcome(_ d: Decision, attempt: Int, now: Date = Date(),
                               jitter: Double = Double.random(in: 0...1)) -> JobOutcome? {
        switch d {
        case .done(let meta): .done(meta)
        case .failed(let f): .failed(f)
        case .retry(let f): .retry(f, notBefore: now.addingTimeInterval(retryDelay(attempt: attempt, jitter: jitter)))
        case .cancelled(let why): .cancelled(why)
        case .requeued: .requeued
        case .nothing: nil
        }
    }
}
