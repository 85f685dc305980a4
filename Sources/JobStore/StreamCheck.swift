import CMongoC
import Foundation
import RunnerCore

/// The change stream's proof that it delivers what its filter must match
/// (docs/contract.md, "The change stream checks itself"): on open and every
/// `interval`, the watcher writes its marker document, in a collection of its
/// own that the same stream watches, in one request of four statements, each
/// a change that one clause of the filter must match; every one of them must
/// arrive within `timeout`. A server that accepts the filter and then matches
/// nothing (or not every clause) is found out, and the stream treated as down.
struct StreamCheck: Sendable {
    /// The changes the check makes, one per clause of the filter.
    enum Change: String, CaseIterable, Sendable {
        case written, cancel, wake, due

        /// The server's behaviour when this change does not arrive.
        var behaviour: String {
            switch self {
            case .written: "inserts and replacements (operationType $in [insert, replace]): new jobs"
            case .cancel: "updates setting cancelRequested (updateDescription.updatedFields.cancelRequested): cancels"
            case .wake: "updates setting status pending (updateDescription.updatedFields.status): retried and requeued jobs"
            case .due: "updates removing notBefore (updateDescription.removedFields): woken deferred jobs"
            }
        }
    }

    /// How a check ended.
    enum Verdict: Sendable, Equatable {
        case passed
        /// The server's behaviour, for the operator.
        case failed(String)
    }

    /// How long the check's changes may take to arrive.
    static let timeout = Duration.seconds(5)
    /// How often the stream proves itself again.
    static let interval = Duration.seconds(300)
    /// After a check that failed, the next: soon, so that a slow moment
    /// (a loaded server) does not leave the stream distrusted for long.
    static let retryFailedAfter = Duration.seconds(60)
    /// After a marker write that failed (an outage), the next try.
    static let retryAfter = Duration.seconds(30)

    let markerId: String
    private var awaiting: Set<Change> = []
    private var deadline: ContinuousClock.Instant?
    private var nextAt = ContinuousClock.now

    init(markerId: String) { self.markerId = markerId }

    /// Whether a check should start now.
    func due(_ now: ContinuousClock.Instant) -> Bool { deadline == nil && now >= nextAt }

    /// Records that the check's write was sent at `now` (or failed: `error`).
    mutating func started(_ now: ContinuousClock.Instant, error: String?) -> Verdict? {
        if let error {
            nextAt = now + Self.retryAfter
            return .failed("the change stream's check could not write its marker: \(error)")
        }
        awaiting = Set(Change.allCases)
        deadline = now + Self.timeout
        return nil
    }

    /// Takes a change event of the marker collection (`event`); nil when the
    /// event is not this check's marker.
    mutating func saw(_ event: JSONValue) {
        guard event["documentKey"]?["_id"]?.stringValue == markerId else { return }
        let fields = event["updateDescription"]?["updatedFields"]
        switch event["operationType"]?.stringValue {
        case "insert", "replace": awaiting.remove(.written)
        case "update":
            if fields?["cancelRequested"]?.boolValue == true { awaiting.remove(.cancel) }
            if fields?["status"]?.stringValue == JobStatus.pending.rawValue { awaiting.remove(.wake) }
            if event["updateDescription"]?["removedFields"]?.arrayValue?.contains(where: { $0.stringValue == "notBefore" }) == true {
                awaiting.remove(.due)
            }
        default: break
        }
    }

    /// The check's verdict once every change arrived or the time is up; nil meanwhile.
    mutating func verdict(_ now: ContinuousClock.Instant) -> Verdict? {
        guard let deadline else { return nil }
        if awaiting.isEmpty {
            self.deadline = nil
            nextAt = now + Self.interval
            return .passed
        }
        guard now >= deadline else { return nil }
        self.deadline = nil
        nextAt = now + Self.retryFailedAfter
        let missing = Change.allCases.filter(awaiting.contains).map(\.behaviour)
        return .failed("the server accepted the change stream's filter but did not deliver, within "
            + "\(Self.timeout.components.seconds) s, changes it must match: " + missing.joined(separator: "; ")
            + " (its $match on these fields inside $or matches nothing)")
    }

    /// The marker write: one `update` request, four statements (a replacement
    /// that upserts, then three updates), each matched by one clause of the
    /// filter. Blocking: the watcher's thread calls it.
    static func writeMarker(_ coll: OpaquePointer, id: String) throws {
        let key: JSONValue = ["_id": .string(id)]
        let now = JSONValue.date(Date())
        let matched = try CollectionOps.replaceThenUpdate(coll, replace: (key, [
            "status": "marker", "cancelRequested": false, "notBefore": now, "at": now,
        ]), then: [
            (key, ["$set": ["cancelRequested": true]]),
            (key, ["$set": ["status": JobStatus.pending.json]]),
            (key, ["$unset": ["notBefore": ""]]),
        ])
        // The three updates match the marker (the replacement too, once it
        // exists): fewer means the write, not the stream, failed the check.
        guard matched >= 3 else {
            throw ServerContradiction(operation: "change stream check", shape: "an ordered update of a replacement "
                + "that upserts and three updateOne statements on _id", first: "the server acknowledged the marker write",
                second: "it matched \(matched) document(s) for the 3 updates on the document it had just written")
        }
    }
}

extension JobStore {
    /// Removes the change stream check's marker document `id` (a supervisor's, at its exit).
    public func removeStreamMarker(_ id: String) async throws {
        _ = try await pool.run(markersName) { try CollectionOps.delete($0, filter: ["_id": .string(id)]) }
    }
}

extension JobStore {
    /// `doctor`'s run of the supervisor's change stream check, once, on
    /// scratch collections (dropped afterwards): whether the stream opened
    /// and delivered every change of the check, and what it said.
    public func checkChangeStream() async -> (ok: Bool, why: String) {
        let scratch = JobStore(pool: pool, logCap: 5, collectionPrefix: "doctor_\(UUID().uuidString.prefix(8).lowercased())_")
        let watcher = ChangeWatcher(store: scratch, markerId: "doctor")
        let state = Locked<(ok: Bool, why: String)?>(nil)
        watcher.startEvents(onEvent: { _ in }, onState: { ok, why in state.withLock { $0 = $0 ?? (ok, why) } })
        let deadline = ContinuousClock.now + StreamCheck.timeout + .seconds(10)
        var result = state.withLock { $0 }
        while result == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
            result = state.withLock { $0 }
        }
        watcher.stop()
        for name in [scratch.markersName, scratch.jobsName] { _ = try? await pool.command(["drop": .string(name)]) }
        return result ?? (false, "the change stream neither opened nor failed in time")
    }
}
