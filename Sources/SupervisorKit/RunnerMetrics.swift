import Foundation
import Metrics
import RunnerCore

/// The supervisor's metrics, through swift-metrics (the executable chooses
/// the backend: Prometheus). Names follow Prometheus conventions.
enum RunnerMetrics {
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

    static func childExit(_ reason: String) {
        Counter(label: "agent_runner_child_exits_total", dimensions: [("reason", reason)]).increment()
    }
}

extension Duration {
    var milliseconds: Int { Int(nanoseconds / 1_000_000) }

    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
