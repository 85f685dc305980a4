import Foundation
import Logging
import UnixSignals

/// How a drain becomes a forced stop: once the supervisor drains (SIGTERM,
/// `--exit-when-idle`, or a server it cannot trust), running jobs get
/// SHUTDOWN_GRACE_SECONDS to finish; then, or at a second SIGTERM or SIGINT,
/// they are stopped and requeued (`ShutdownSignal.force`). A child task of
/// the supervisor's task group: it ends with it.
struct ShutdownEscalation: Sendable {
    let shutdown: ShutdownSignal
    let grace: Duration
    let logger: Logger
    /// Wakes the claim loop (which then waits for the stopped jobs).
    let wake: @Sendable () -> Void

    func run() async {
        while !shutdown.isDraining {
            do { try await Task.sleep(for: .milliseconds(100)) } catch { return }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [logger] in
                // A second SIGTERM or SIGINT skips the wait (jobs are still requeued).
                for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    logger.notice("second signal: stopping running jobs now and requeueing them")
                    return
                }
            }
            group.addTask { [grace, logger, shutdown] in
                guard (try? await Task.sleep(for: grace)) != nil else { return }
                if !shutdown.isForced { logger.notice("shutdown grace over: stopping running jobs and requeueing them") }
            }
            // The first to end (unless the supervisor's group is cancelled first) forces the stop.
            await group.next()
            group.cancelAll()
            if !Task.isCancelled {
                shutdown.force()
                wake()
            }
        }
    }
}
