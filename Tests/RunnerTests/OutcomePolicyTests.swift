#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import RunnerCore
import Sandbox
@testable import SupervisorKit
import Testing

/// The job's outcome decided in one place: a table of what happened and
/// what the job becomes, with no process, clock or database.
@Suite struct OutcomePolicyTests {
    static let policy = OutcomePolicy(attempt: 1, maxAttempts: 3, timeoutSeconds: 60, cpuSeconds: 30,
                                      maxTotalMB: 50, maxProcesses: 64)
    static let done: JobMetadata = { var m = JobMetadata(); m.commitSha = "abc"; return m }()
    static let pushed = ChildEvent.succeeded(done)
    static let crash = ExitStatus.signaled(SIGSEGV)
    static let tokenWithheld = JobFailure(.sandboxViolation, "withheld")
    static let checkpoint = CheckpointInfo(branch: "agent-runner/wip/j", commitSha: String(repeating: "a", count: 40),
                                           reason: .timeout)

    /// One row: what happened, and the code (or kind) it must end as.
    struct Row: Sendable, CustomTestStringConvertible {
        let name: String
        let facts: RunFacts
        let expect: String
        var testDescription: String { name }
    }

    static func kind(_ d: OutcomePolicy.Decision) -> String {
        switch d {
        case .done: "done"
        case .failed(let f): "failed:" + f.code.rawValue
        case .retry(let f): "retry:" + f.code.rawValue
        case .cancelled: "cancelled"
        case .requeued: "requeued"
        case .nothing: "nothing"
        }
    }

    static let rows: [Row] = [
        Row(name: "a success is done", facts: RunFacts(result: pushed, exit: .exited(0)), expect: "done"),
        Row(name: "a success wins over a later cancel", facts: RunFacts(result: pushed, exit: .exited(0), stop: .cancelled),
            expect: "done"),
        Row(name: "a success wins over the timeout", facts: RunFacts(result: pushed, exit: .signaled(SIGKILL), stop: .timeout),
            expect: "done"),
        Row(name: "a success wins over shutdown", facts: RunFacts(result: pushed, exit: .exited(0), stop: .shutdown),
            expect: "done"),
        Row(name: "a success wins over refused forks", facts: RunFacts(result: pushed, exit: .exited(0), refusedForks: 7),
            expect: "done"),
        Row(name: "a lost lease writes nothing, even a success",
            facts: RunFacts(result: pushed, exit: .exited(0), stop: .leaseLost), expect: "nothing"),
        Row(name: "a lost lease writes nothing", facts: RunFacts(exit: .signaled(SIGKILL), stop: .leaseLost), expect: "nothing"),
        Row(name: "cancel", facts: RunFacts(exit: .signaled(SIGTERM), stop: .cancelled), expect: "cancelled"),
        Row(name: "cancel wins over refused forks", facts: RunFacts(exit: .signaled(SIGTERM), stop: .cancelled, refusedForks: 3),
            expect: "cancelled"),
        Row(name: "shutdown requeues", facts: RunFacts(exit: .signaled(SIGTERM), stop: .shutdown), expect: "requeued"),
        Row(name: "timeout", facts: RunFacts(exit: .signaled(SIGKILL), stop: .timeout), expect: "failed:timeout"),
        Row(name: "a checkpoint after the timeout is still the timeout",
            facts: RunFacts(exit: .exited(0), stop: .timeout, checkpoint: checkpoint), expect: "failed:timeout"),
        Row(name: "a checkpoint after a cancel is still cancelled",
            facts: RunFacts(exit: .exited(0), stop: .cancelled, checkpoint: checkpoint), expect: "cancelled"),
        Row(name: "the budget spent, not retried, over the agent's own failure",
            facts: RunFacts(result: .failed(JobFailure(.generationFailed, "cline: 402")), exit: .exited(1), stop: .budgetExceeded,
                            failure: JobFailure(.budgetExceeded, "budget exceeded")), expect: "failed:budget_exceeded"),
        Row(name: "a success wins over the budget's stop", facts: RunFacts(result: pushed, exit: .exited(0), stop: .budgetExceeded),
            expect: "done"),
        Row(name: "a fork bomb that timed out is a resource limit",
            facts: RunFacts(exit: .signaled(SIGKILL), stop: .timeout, refusedForks: 9), expect: "failed:resource_limit"),
        Row(name: "refused forks over the child's own failure",
            facts: RunFacts(result: .failed(JobFailure(.generationFailed, "x")), exit: .exited(0), refusedForks: 1),
            expect: "failed:resource_limit"),
        Row(name: "the token failure over the child's failure",
            facts: RunFacts(result: .failed(JobFailure(.pushFailed, "eof")), exit: .exited(0), failure: tokenWithheld),
            expect: "failed:sandbox_violation"),
        Row(name: "a withheld token over the child's success (its push was skipped)",
            facts: RunFacts(result: pushed, exit: .exited(0), failure: tokenWithheld), expect: "failed:sandbox_violation"),
        Row(name: "the timeout over a token failure",
            facts: RunFacts(exit: .signaled(SIGKILL), stop: .timeout, failure: tokenWithheld), expect: "failed:timeout"),
        Row(name: "a malformed protocol line over the child's death",
            facts: RunFacts(exit: .signaled(SIGKILL), protocolFailure: JobFailure(.internal, "bad line", retryable: false)),
            expect: "failed:internal"),
        Row(name: "a success reported before a malformed line still wins",
            facts: RunFacts(result: pushed, exit: .signaled(SIGKILL), protocolFailure: JobFailure(.internal, "bad line")),
            expect: "done"),
        Row(name: "a cancel over a malformed line",
            facts: RunFacts(exit: .signaled(SIGKILL), stop: .cancelled, protocolFailure: JobFailure(.internal, "bad line")),
            expect: "cancelled"),
        Row(name: "a launch failure", facts: RunFacts(failure: JobFailure(.sandboxUnavailable, "no userns")),
            expect: "failed:sandbox_unavailable"),
        Row(name: "a retryable launch failure is retried", facts: RunFacts(failure: JobFailure(.internal, "spawn")),
            expect: "retry:internal"),
        Row(name: "the child's retryable failure is retried",
            facts: RunFacts(result: .failed(JobFailure(.pushFailed, "net")), exit: .exited(0)), expect: "retry:push_failed"),
        Row(name: "the child's failure as its retryable flag says",
            facts: RunFacts(result: .failed(JobFailure(.generationFailed, "blocked", retryable: false)), exit: .exited(0)),
            expect: "failed:generation_failed"),
        Row(name: "SIGSYS", facts: RunFacts(exit: .signaled(SIGSYS)), expect: "failed:sandbox_violation"),
        Row(name: "SIGXCPU", facts: RunFacts(exit: .signaled(SIGXCPU)), expect: "failed:resource_limit"),
        Row(name: "SIGXFSZ", facts: RunFacts(exit: .signaled(SIGXFSZ)), expect: "failed:resource_limit"),
        Row(name: "a crash without a result", facts: RunFacts(exit: crash), expect: "retry:child_crashed"),
        Row(name: "an exit without a result", facts: RunFacts(exit: .exited(0)), expect: "retry:child_crashed"),
        Row(name: "no child and no failure is internal", facts: RunFacts(), expect: "retry:internal"),
    ]

    @Test(arguments: rows) func decides(_ row: Row) {
        #expect(Self.kind(Self.policy.decide(row.facts)) == row.expect)
    }

    @Test func theLastAttemptFailsInsteadOfRetrying() {
        var last = Self.policy
        last.attempt = 3
        #expect(Self.kind(last.decide(RunFacts(exit: Self.crash))) == "failed:child_crashed")
        #expect(Self.kind(last.decide(RunFacts(failure: JobFailure(.leaseLost, "lapsed")))) == "failed:lease_lost")
    }

    @Test func messagesNameTheLimits() {
        guard case .failed(let f) = Self.policy.decide(RunFacts(exit: .signaled(SIGKILL), stop: .timeout)) else {
            Issue.record("not failed"); return
        }
        #expect(f.message.contains("JOB_TIMEOUT_SECONDS=60"))
        guard case .failed(let g) = Self.policy.decide(RunFacts(exit: .exited(1), refusedForks: 4)) else {
            Issue.record("not failed"); return
        }
        #expect(g.message.contains("JOB_MAX_PROCESSES=64") && g.message.contains("4 time(s)"))
    }

    /// A stopped run's checkpoint is named in its message, whatever stopped it.
    @Test func messagesSayWhereThePartialWorkIs() {
        let at = "; the partial work is on branch agent-runner/wip/j at " + String(repeating: "a", count: 40)
        let budget = JobFailure(.budgetExceeded, "budget exceeded: JOB_BUDGET_REQUESTS=2 requests spent")
        let decided: [OutcomePolicy.Decision] = [
            Self.policy.decide(RunFacts(exit: .exited(0), stop: .timeout, checkpoint: Self.checkpoint)),
            Self.policy.decide(RunFacts(exit: .exited(0), stop: .budgetExceeded, failure: budget, checkpoint: Self.checkpoint)),
            Self.policy.decide(RunFacts(exit: .exited(0), stop: .cancelled, checkpoint: Self.checkpoint)),
        ]
        let messages = decided.map { d -> String in
            switch d {
            case .failed(let f): f.message
            case .cancelled(let why): why
            default: "\(d)"
            }
        }
        #expect(messages == ["the job ran longer than JOB_TIMEOUT_SECONDS=60" + at, budget.message + at,
                             "cancelled while running" + at])
    }

    @Test func retryBackoffGrowsWithTheAttemptAndIsCapped() {
        #expect(OutcomePolicy.retryDelay(attempt: 1, jitter: 0) == 1)
        #expect(OutcomePolicy.retryDelay(attempt: 2, jitter: 0) == 16)
        #expect(OutcomePolicy.retryDelay(attempt: 2, jitter: 1) == 16 + 5)
        #expect(OutcomePolicy.retryDelay(attempt: 50, jitter: 0) == 3600)
        let now = Date(timeIntervalSince1970: 1_000_000)
        guard case .retry(_, let at)? = OutcomePolicy.outcome(.retry(JobFailure(.internal, "x")), attempt: 2, now: now,
                                                               jitter: 0) else {
            Issue.record("not a retry"); return
        }
        #expect(at == now.addingTimeInterval(16))
    }
}

/// Errors typed where they arise: a kernel without Landlock is a host the
/// operator must fix, never a retried `internal`.
@Suite struct TypedSourceErrorTests {
    @Test func aKernelWithoutLandlockIsSandboxUnavailable() throws {
        #expect(try Landlock.required(7) == 7)
        do {
            _ = try Landlock.required(nil)
            Issue.record("no error without Landlock")
        } catch let f as JobFailure {
            #expect(f.code == .sandboxUnavailable && !f.retryable)
            #expect(f.message.contains("Landlock") && f.message.contains("doctor"))
        }
    }
}
