import Foundation
import JobStore
import Logging
import RunnerCore

/// Where the supervisor's checks of the server's answers meet: each
/// contradiction (`ServerContradiction`) is logged as an error naming the
/// operation and both answers; at `limit` the supervisor stops (exit 69,
/// like a rejected claim) with a message naming the query shape the server
/// mishandles. Nothing is acted on from a contradicting answer.
final class ServerChecks: Sendable {
    /// Contradictions, in all, before the supervisor stops.
    static let limit = 3

    private let logger: Logger
    private let count = Locked(0)
    private let stop: @Sendable (String) -> Void

    /// `stop` is called once, with the message, when the limit is reached.
    init(logger: Logger, stop: @escaping @Sendable (String) -> Void) {
        self.logger = logger
        self.stop = stop
    }

    /// Logs `c`; stops the supervisor at the `limit`-th.
    func record(_ c: ServerContradiction) {
        let n = count.withLock { n in n += 1; return n }
        RunnerMetrics.databaseError()
        logger.error("the database's answers contradict each other; acting on neither", metadata: [
            "operation": "\(c.operation)", "first": "\(c.first)", "second": "\(c.second)",
            "shape": "\(c.shape)", "contradictions": "\(n)/\(Self.limit)",
        ])
        if n == Self.limit {
            stop("the database mishandles a query shape: \(c.shape) (\(c.operation): \(c.first), but \(c.second)); "
                + "\(Self.limit) contradicting answers, stopping")
        }
    }
}
