import Foundation
import RunnerCore

/// The supervisor's timings and limits, and how it fails.
extension Supervisor {
    /// The longest the claim loop stays asleep while the change stream works:
    /// a 30 s safety poll (at least RUNNER_POLL_SECONDS), shortened to half
    /// the systemd watchdog interval so the loop's own progress feeds it.
    public static func maxLoopInterval(_ config: RunnerConfiguration, watchdog: Duration? = nil) -> Double {
        let base = max(config.pollSeconds, 30)
        guard let watchdog else { return base }
        let (s, atto) = watchdog.components
        return min(base, max(0.5, (Double(s) + Double(atto) / 1e18) / 2))
    }

    /// How long a job's stage and lines may wait for the batched flush:
    /// nil, the flush's own 250 ms (docs/contract.md, Stages).
    static var progressInterval: Duration? {
        #if DEBUG
        // Tests only: a count test stretches it, so that a short job's writes are exactly its own.
        if let ms = ProcessInfo.processInfo.environment["AGENT_RUNNER_TEST_PROGRESS_MS"].flatMap(Int.init) {
            return .milliseconds(ms)
        }
        #endif
        return nil
    }

    /// How long a job's launch waits before it starts (after its ticket):
    /// nil, not at all. Tests only: a slow pre-launch phase, for the lease
    /// held from the claim (debug builds only).
    static var launchDelay: Duration? {
        #if DEBUG
        if let ms = ProcessInfo.processInfo.environment["AGENT_RUNNER_TEST_LAUNCH_DELAY_MS"].flatMap(Int.init) {
            return .milliseconds(ms)
        }
        #endif
        return nil
    }

    /// How long the set of projects locked by other supervisors is reused between claims.
    static let busyRefresh = Duration.seconds(2)

    /// Consecutive claims the server rejects (not outages) before the supervisor stops.
    static let rejectionsBeforeExit = 3
}

/// The supervisor cannot work with this database: the server rejects an
/// operation the claim needs (the executable exits 69 with `message`).
public struct SupervisorFailure: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
