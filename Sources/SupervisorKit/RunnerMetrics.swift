import Foundation
import Metrics
import RunnerCore

/// The supervisor's metrics, through swift-metrics (the executable chooses
/// the backend: Prometheus). Names follow Prometheus conventions.
public enum RunnerMetrics {
    /// The statuses `agent_runner_jobs_finished_total` counts.
    static let finishedStatuses = ["done", "failed", "retry", "cancelled", "requeued"]
    /// The common `agent_runner_child_exits_total` reasons.
    static let commonExitReasons = ["exit_0", "exit_nonzero", "sigkill", "sigterm"]

    /// Creates every counter, gauge and timer at 0, so a fresh runner's first
    /// scrape already has each series (dashboards and `absent()` alerts work
    /// before the first job). Call once, right after bootstrapping the backend.
    public static func registerAll(slots: Int) {
        Counter(label: "agent_runner_jobs_claimed_total").increment(by: 0)
        for status in finishedStatuses {
            Counter(label: "agent_runner_jobs_finished_total", dimensions: [("status", status), ("code", "")]).increment(by: 0)
        }
        for reason in commonExitReasons {
            Counter(label: "agent_runner_child_exits_total", dimensions: [("reason", reason)]).increment(by: 0)
        }
        Counter(label: "agent_runner_database_errors_total").increment(by: 0)
        running(0, slots: slots)
        _ = Metrics.Timer(label: "agent_runner_job_duration_seconds")
        _ = Metrics.Timer(label: "agent_runner_claim_latency_seconds")
    }

    static func claimed() { Counter(label: "agent_runner_jobs_claimed_total").increment() }

    static func finished(status: String, code: String) {
        Counter(label: "agent_runner_jobs_finished_total", dimensions: [("status", status), ("code", code)]).increment()
    }

    static func running(_ n: Int, slots: Int) {
        Gauge(label: "agent_runner_jobs_running").record(n)
        Gauge(label: "agent_runner_slots").record(slots)
    }

    static func jobDuration(_ d: Duration) {
        Metrics.Timer(label: "agent_runner_job_duration_seconds").recordNanoseconds(d.nanoseconds)
    }

    /// From the job's `createdAt` (or `notBefore`) to its claim.
    static func claimLatency(_ seconds: Double) {
        Metrics.Timer(label: "agent_runner_claim_latency_seconds").recordNanoseconds(Int64(max(seconds, 0) * 1e9))
    }

    static func databaseError() { Counter(label: "agent_runner_database_errors_total").increment() }

    /// One destination the job's egress proxy refused, by reason (EgressProxy.DenyReason).
    static func egressDenied(reason: String) {
        Counter(label: "agent_runner_egress_denied_total", dimensions: [("reason", reason)]).increment()
    }

    static func childExit(_ reason: String) {
        Counter(label: "agent_runner_child_exits_total", dimensions: [("reason", reason)]).increment()
    }
}
