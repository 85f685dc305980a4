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
    /// `provider`: CLINE_PROVIDER's kind, the `provider` label of the provider route's model calls.
    public static func registerAll(slots: Int, provider: String? = nil) {
        if let provider { providerKind.withLock { $0 = provider } }
        // An info metric: always 1, its labels say which build this process is.
        Gauge(label: "agent_runner_build_info",
              dimensions: [("version", RunnerVersion.string), ("commit", RunnerVersion.commit)]).record(1)
        Counter(label: "agent_runner_jobs_claimed_total").increment(by: 0)
        for status in finishedStatuses {
            Counter(label: "agent_runner_jobs_finished_total", dimensions: [("status", status), ("code", "")]).increment(by: 0)
        }
        for reason in commonExitReasons {
            Counter(label: "agent_runner_child_exits_total", dimensions: [("reason", reason)]).increment(by: 0)
        }
        Counter(label: "agent_runner_database_errors_total").increment(by: 0)
        Counter(label: "agent_runner_budget_stops_total").increment(by: 0)
        Counter(label: "agent_runner_provider_retries_total").increment(by: 0)
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

    /// One metered model call: its tokens by kind and its cost, by route and model.
    /// The model names become labels: the agent chooses them, so at most
    /// `maxModelLabels` per process; later ones count as `other`.
    static func modelCall(_ call: CallUsage) {
        let model = modelLabels.withLock { seen -> String in
            let name = call.model ?? "unknown"
            if seen.contains(name) { return name }
            guard seen.count < maxModelLabels else { return "other" }
            seen.insert(name)
            return name
        }
        // The provider: CLINE_PROVIDER's kind on the provider route, `gemini` on the Gemini route.
        let provider = call.route == "gemini" ? "gemini" : providerKind.withLock { $0 }
        let dims = [("route", call.route), ("provider", provider), ("model", model)]
        Counter(label: "agent_runner_model_calls_total", dimensions: dims + [("status", String(call.status))]).increment()
        for (kind, n) in [("input", call.inputTokens), ("output", call.outputTokens), ("cache_read", call.cacheReadTokens),
                          ("cache_write", call.cacheWriteTokens)] where n > 0 {
            Counter(label: "agent_runner_model_tokens_total", dimensions: dims + [("kind", kind)]).increment(by: n)
        }
        if let cost = call.cost, cost > 0 {
            FloatingPointCounter(label: "agent_runner_model_cost_usd_total", dimensions: dims).increment(by: cost)
        }
    }

    static let maxModelLabels = 32
    private static let providerKind = Locked("provider")
    private static let modelLabels = Locked<Set<String>>([])

    /// A provider's fault the egress proxy tried again.
    static func providerRetry() { Counter(label: "agent_runner_provider_retries_total").increment() }

    /// A job stopped because a model call was refused for its budget.
    static func budgetStop() { Counter(label: "agent_runner_budget_stops_total").increment() }

    static func childExit(_ reason: String) {
        Counter(label: "agent_runner_child_exits_total", dimensions: [("reason", reason)]).increment()
    }
}
