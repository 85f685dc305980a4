import Foundation
import RunnerCore

/// A running job whose lease expired, as the claim read it: its runner
/// stopped renewing the lease (it died, or lost the database) before the
/// attempt ended. The lapse counts: the attempt was counted when it was
/// claimed, and the next claim either runs the job again, recording the
/// lapse in `errors` and `logs`, or, when `attempts` reached `maxAttempts`,
/// fails it `lease_lost`, not retryable, so that no job loops forever on
/// lapsing leases (docs/contract.md, Statuses).
public struct LeaseLapse: Sendable {
    /// `_id` as stored.
    public let id: JSONValue
    /// The attempts counted so far (the lapsed one included).
    public let attempts: Int
    /// The job's `maxAttempts`, else JOB_MAX_ATTEMPTS.
    public let maxAttempts: Int
    /// The lapsed lease's owner and token, as read (the token pins the claim's write to it).
    public let owner: String?
    public let token: JSONValue?
    /// Whether a cancel was requested: at the last attempt the job ends
    /// `cancelled` rather than `failed`.
    public let cancelRequested: Bool

    /// The lapse of `candidate`, nil when it is not a running job (a pending one).
    init?(_ candidate: JSONValue, maxAttempts defaultMax: Int) {
        guard candidate["status"]?.stringValue == JobStatus.running.rawValue, let id = candidate["_id"] else { return nil }
        let job = Job(candidate)
        self.id = id
        attempts = job.attempts
        maxAttempts = job.maxAttempts ?? defaultMax
        owner = candidate["lease"]?["owner"]?.stringValue
        token = candidate["lease"]?["token"]
        cancelRequested = job.cancelRequested
    }

    /// Whether the job has had all its attempts: it fails instead of running again.
    public var isLast: Bool { attempts >= maxAttempts }

    public var idText: String { JobStore.idText(id) }

    /// What is recorded of the lapse.
    public var failure: JobFailure {
        JobFailure(.leaseLost, "the lease of attempt \(attempts) of \(maxAttempts) lapsed: its runner (\(owner ?? "unknown")) "
            + "stopped renewing it before the attempt ended" + (isLast ? "; not run again" : ""), retryable: !isLast)
    }

    /// The `$push` of the lapse into `errors` (with `at` and `attempt`, as a
    /// failed attempt's) and, as a line, into `logs` (capped to `logCap`).
    func history(now: JSONValue, logCap: Int) -> JSONValue {
        let f = failure
        var entry = f.json.objectValue ?? [:]
        entry["at"] = now
        entry["attempt"] = .int(Int64(attempts))
        return ["errors": ["$each": [.object(entry)], "$slice": -20],
                "logs": ["$each": [.string("[lease_lost] " + f.message)], "$slice": .int(-Int64(logCap))]]
    }

    /// The update that ends the job at its last attempt: `failed` with
    /// `lease_lost`, or `cancelled` (no `error`) when a cancel was requested.
    func failUpdate(now: JSONValue, logCap: Int) -> JSONValue {
        var push = history(now: now, logCap: logCap).objectValue ?? [:]
        guard cancelRequested else {
            return ["$set": ["status": JobStatus.failed.json, "stage": "finished", "finishedAt": now, "updatedAt": now, "error": failure.json],
                    "$unset": ["lease": "", "notBefore": "", "waitingForProject": ""],
                    "$push": .object(push)]
        }
        // As any cancel: the reason is the last line of `logs`.
        push["logs"] = ["$each": [.string("[lease_lost] " + failure.message), "cancelled after its lease lapsed"],
                        "$slice": .int(-Int64(logCap))]
        return ["$set": ["status": JobStatus.cancelled.json, "stage": "finished", "finishedAt": now, "updatedAt": now],
                "$unset": ["lease": "", "notBefore": "", "waitingForProject": "", "error": ""],
                "$push": .object(push)]
    }
}
