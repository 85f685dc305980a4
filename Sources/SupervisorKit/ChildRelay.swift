#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import Logging
import RunnerCore

/// Relays one running job child until it exits: its events and stderr to the
/// job's log (batched, fenced on the lease), its result, the push token when
/// it asks (`PushTokenHandOver`), the egress proxy's events; meanwhile its
/// lease is held with the supervisor's others (`LeaseKeeper`, from the
/// claim: `JobRunner`) and its
/// deadline, shutdown and lease clock enforced (`Enforcer`). Returns what
/// happened, for `OutcomePolicy`; decides nothing itself.
struct ChildRelay: Sendable {
    let job: ClaimedJob
    let launched: LaunchedJob
    let repoURL: String?
    let redactor: Locked<Redactor>
    let logger: Logger
    let leaseSeconds: Int
    let timeoutSeconds: Int
    let leases: LeaseKeeper
    let writes: WriteBatcher
    let shutdown: ShutdownSignal
    let tokens: PushTokenHandOver
    /// The job's lease clock and its child's stop flags: made at the claim,
    /// where the lease is held from (`JobRunner.attempt`) until the relay ends.
    let lease: LeaseClock
    let control: ChildControl
    /// CHECKPOINT_ON and CHECKPOINT_GRACE_SECONDS (the child checkpoints only when its ticket has a plan).
    var checkpoints = CheckpointSettings(on: [])
    /// The job's share of the daily budgets (nil: none apply).
    var daily: DailySpend? = nil

    /// What the relay saw: the facts for the outcome, the log lines not yet
    /// written (they go with the outcome) and the supervisor's share of the
    /// phase timings (the launch's, then the relay's), and the model calls'
    /// usage the egress proxy metered (nil: none).
    struct Ended: Sendable {
        var facts: RunFacts
        let lines: [String]
        let timings: [String: Int]
        var usage: UsageTotals? = nil
    }

    /// Relays until the child exits and its output is read to the end.
    func run() async -> Ended {
        let child = launched.child
        let tokenFailure = Locked<JobFailure?>(nil)
        // What the egress proxy denied, by host: handed to the child with the push token (a pull request reports it).
        let egress = Locked(EgressReport())
        // A stdout line of the child that is not a protocol event: the child is killed at once.
        let protocolFailure = Locked<JobFailure?>(nil)
        let logs = LogBatcher(job: job, writes: writes)
        let firstEvent = Locked<ContinuousClock.Instant?>(nil)
        // The proxy's metering and budget: a refused call stops the child (`budget_exceeded`).
        let report = ProxyReport()
        let result = ResultBox()
        // The partial work the child pushed after a stop (its `checkpoint` event).
        let checkpoint = Locked<CheckpointInfo?>(nil)
        let started = ContinuousClock.now
        let deadline = started + .seconds(timeoutSeconds)
        // The lease is let go of with the relay, before the outcome is written.
        defer { leases.release(job) }
        for note in launched.notes { await logs.note(note) }
        // The job's event stream was started at the claim (`JobRunner.attempt`).
        await logs.event(.stage(.claimed, at: Date()), redactor: redactor.withLock { $0 })
        return await withTaskGroup(of: Void.self) { group in
            // Refusals, model calls and the budget from the job's egress proxy.
            if let proxy = launched.proxy {
                group.addTask { [redactor, daily, logger] in
                    await proxy.relay { event in
                        if event.kind == .denied { egress.withLock { $0.record(deniedTarget: event.target ?? "?") } }
                        let r = redactor.withLock { $0 }
                        if let e = event.jobEvent() { await logs.event(e, redactor: r) }
                        if let line = report.take(event, control: control) { await logs.add(r.redact(line)) }
                        // Each call's bound reserved in the shared daily spend before it starts, settled when it ends.
                        if let daily {
                            let (lines, answer) = await daily.take(event, report: report, control: control, logger: logger)
                            for line in lines { await logs.note(line) }
                            if let answer { await proxy.answer(answer) }
                        }
                    }
                }
            }
            // Events from the child, read to the end even if this task is cancelled
            // (a result the child reported must not be lost).
            group.addTask {
                await Task.detached {
                    for await line in child.output {
                        firstEvent.withLock { if $0 == nil { $0 = .now } }
                        switch line {
                        case .stderr(let text): await logs.add("[stderr] " + redactor.withLock { $0 }.redact(text))
                        case .stdout(let text):
                            guard let event = try? JSONDecoder().decode(ChildEvent.self, from: Data(text.utf8)) else {
                                let failure = LineFraming.malformed("a line the job child wrote on stdout", line: text,
                                                                    redactor: redactor.withLock { $0 })
                                if protocolFailure.withLock({ f in defer { f = f ?? failure }; return f == nil }) {
                                    await logs.add(failure.message)
                                    child.signalGroup(SIGKILL)
                                }
                                continue
                            }
                            // With the push token goes what the proxy saw so far, its metering included.
                            var seen = egress.withLock { $0 }
                            seen.metered = report.usage?.agentUsage
                            if case .stopping = event {
                                control.acknowledgeStop()
                                continue
                            }
                            if case .checkpoint(let info) = event {
                                checkpoint.withLock { $0 = $0 ?? info }
                                await logs.event(.publish(step: "checkpoint", detail: info.reason.rawValue, commit: info.commitSha,
                                                          branch: info.branch), redactor: redactor.withLock { $0 })
                                continue
                            }
                            await relay(event, logs: logs, result: result, tokenFailure: tokenFailure, egress: seen,
                                        control: control, lease: lease)
                        }
                    }
                }.value
            }
            let status = await waitForExit(lease: lease, control: control, deadline: deadline, report: report, result: result)
            let exitedAt = ContinuousClock.now
            RunnerMetrics.childExit(status.metricLabel)
            RunnerMetrics.jobDuration(exitedAt - started)
            launched.proxy?.stop()
            await group.waitForAll()
            await logs.note("child exited: \(status)")
            let (lines, waited) = await logs.takeAll()
            logger.info("child exited", metadata: ["status": "\(status)"])
            var timings = launched.timings
            timings["afterExitMs"] = (ContinuousClock.now - exitedAt).milliseconds
            if let first = firstEvent.withLock({ $0 }) { timings["spawnMs"] = (first - started).milliseconds }
            timings["databaseMs"] = waited.milliseconds
            // A fenced child's job is another runner's, whatever stop came first.
            let facts = RunFacts(result: result.value, exit: status, stop: control.fenced ? .leaseLost : control.reason,
                                 failure: tokenFailure.withLock { $0 } ?? report.budgetFailure,
                                 protocolFailure: protocolFailure.withLock { $0 }, checkpoint: checkpoint.withLock { $0 })
            return Ended(facts: facts, lines: lines, timings: timings, usage: report.usage)
        }
    }

    /// Waits for the child's exit while the periodic work runs on its own
    /// clock: timeout, forced shutdown, self-fencing and the signals
    /// (`Enforcer`; the lease and the cancel flag are the LeaseKeeper's, the
    /// writes the WriteBatcher's). The Enforcer is cancelled the moment the
    /// child exits, so that no sleep of its delays the outcome.
    private func waitForExit(lease: LeaseClock, control: ChildControl, deadline: ContinuousClock.Instant,
                             report: ProxyReport, result: ResultBox) async -> ExitStatus {
        let child = launched.child
        var enforcer = Enforcer(child: child, control: control, deadline: deadline, lease: lease,
                                fenceMargin: LeaseClock.fenceMargin(leaseSeconds: leaseSeconds),
                                shutdown: shutdown, logger: logger)
        enforcer.checkpointOn = checkpoints.on
        enforcer.checkpointGrace = .seconds(checkpoints.graceSeconds)
        enforcer.mayCheckpoint = { result.value == nil }
        enforcer.requestCheckpoint = { [timeoutSeconds] reason in
            guard let why = reason.checkpointReason else { return false }
            let message = switch reason {
            case .timeout: "the job ran longer than JOB_TIMEOUT_SECONDS=\(timeoutSeconds)"
            case .budgetExceeded: report.budgetFailure?.message ?? "the job's budget was spent"
            default: "an operator cancelled the job while it ran"
            }
            guard let line = try? JSONEncoder().encode(ChildStop(reason: why, message: message)) else { return false }
            return (try? await child.send(Array(line) + [0x0A])) != nil
        }
        return await withTaskGroup(of: ExitStatus?.self) { group in
            group.addTask { [enforcer] in
                await enforcer.run()
                return nil
            }
            group.addTask { await child.waitForExit() }
            var status = ExitStatus.exited(0)
            for await ended in group {
                guard let ended else { continue }
                status = ended
                control.markExited()
                group.cancelAll()
            }
            return status
        }
    }

    /// One protocol event of the child.
    private func relay(_ event: ChildEvent, logs: LogBatcher, result: ResultBox, tokenFailure: Locked<JobFailure?>,
                       egress: EgressReport, control: ChildControl, lease: LeaseClock) async {
        let stopping = control.reason != nil
        switch event {
        case .log(let l): await logs.add(redactor.withLock { $0 }.redact(l))
        // `finished` is written by the outcome's write, which sets it.
        case .stage(.finished): break
        // Written with the next batched flush (a lost lease shows there), or with the outcome.
        case .stage(let s):
            await logs.stage(s)
            await logs.event(.stage(s), redactor: redactor.withLock { $0 })
        // Redacted again with what the supervisor knows (the keys the child never sees).
        case .event(let e): await logs.event(e, redactor: redactor.withLock { $0 })
        // The job's redactor knows this job's secrets; the child's knows only their shapes.
        case .failed(var f):
            f.message = redactor.withLock { $0 }.redact(f.message)
            result.set(.failed(f))
        case .succeeded: result.set(event)
        case .checkpoint, .stopping: break
        case .pushTokenRequest:
            // The same hand-over for a stopped run's checkpoint (no agent process may be left), whose
            // failure only costs the checkpoint: the stop decides the outcome.
            // Never to a child whose lease is lost or may have lapsed (another runner may hold the job):
            // it is fenced, and the Enforcer kills it.
            let margin = LeaseClock.fenceMargin(leaseSeconds: leaseSeconds)
            let fenced: @Sendable () -> Bool = {
                if control.fenced { return true }
                guard lease.mayLapse(within: margin) else { return false }
                control.fence()
                return true
            }
            if let failure = await tokens.handOver(job, repoURL: repoURL, launched.child, cgroup: launched.cgroup,
                                                   logs: logs, redactor: redactor, egress: egress, fenced: fenced) {
                if stopping { await logs.note("checkpoint: no push token: \(failure.message)") }
                else { tokenFailure.withLock { $0 = failure } }
            }
        }
    }
}

extension ExitStatus {
    /// The `status` label of the child-exit metric.
    var metricLabel: String {
        switch self {
        case .exited(0): "exit_0"
        case .exited: "exit_nonzero"
        case .signaled(let sig): ExitStatus.signalName(sig).lowercased()
        }
    }
}
