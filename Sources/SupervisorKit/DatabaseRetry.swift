import Foundation
import JobStore
import Logging

/// How the supervisor meets database failures: an outage (network, timeout,
/// no server) is retried with a capped backoff; a rejection (the server
/// refuses the operation: an unsupported operator, a bad query, a missing
/// permission) fails the same way every time, so it is not retried.
enum DatabaseRetry {
    /// Whether `error` is an outage worth retrying (see `MongoError.isOutage`).
    static func isOutage(_ error: any Error) -> Bool { (error as? MongoError)?.isOutage ?? false }

    /// Runs `body`, retrying outages (0.5 s doubling to 10 s) until it
    /// succeeds or `giveUpAfter` has passed; a rejection is thrown at once.
    /// `what` names the operation in the warnings.
    static func run<T: Sendable>(_ what: String, giveUpAfter: Duration, logger: Logger,
                                 _ body: () async throws -> T) async throws -> T {
        var delay = 0.5
        let giveUp = ContinuousClock.now + giveUpAfter
        while true {
            do {
                return try await body()
            } catch {
                guard isOutage(error), ContinuousClock.now < giveUp else { throw error }
                logger.warning("database unavailable; will retry \(what)",
                               metadata: ["error": "\(error)", "seconds": "\(delay)"])
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 10)
            }
        }
    }

    /// The metadata describing a failure: the error, and for a database
    /// error whether it is an outage or a rejection (libmongoc domain and code).
    static func metadata(_ error: any Error) -> Logger.Metadata {
        var m: Logger.Metadata = ["error": "\(error)"]
        if let e = error as? MongoError { m["kind"] = "\(e.kind)"; m["operation"] = "\(e.operation)" }
        return m
    }
}
