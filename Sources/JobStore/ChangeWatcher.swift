import CMongoC
import Foundation
import RunnerCore

/// Watches the jobs collection with a change stream on a dedicated thread
/// (libmongoc's `mongoc_change_stream_next` blocks) and calls `onWake` for
/// every change that can make a job claimable: an insert, a job put back to
/// `pending`, a deferred job woken. `onState` reports whether the stream
/// works (false: the server lacks change streams, it broke, or it did not
/// prove itself: `StreamCheck`; the caller polls meanwhile). The stream is
/// re-opened with a capped backoff.
public final class ChangeWatcher: Sendable {
    private let pool: MongoPool
    private let stopped = Locked(false)
    private let patient = Locked(false)
    private let pipelineJSON: String
    /// The watched collection; with `markers`, the database is watched (the
    /// pipeline keeps these two collections' changes).
    private let collection: String
    /// The supervisor's check: the marker collection and document.
    private let markers: (collection: String, id: String)?

    /// The supervisor's watcher: the store's jobs collection and its marker
    /// collection, with the wake-up `filter`; the stream proves itself with
    /// the marker document `markerId` (`StreamCheck`).
    public convenience init(store: JobStore, markerId: String) {
        self.init(pool: store.pool, collection: store.jobsName, pipeline: Self.pipeline(jobs: store.jobsName, markers: store.markersName),
                  markers: (store.markersName, markerId))
    }

    /// A watcher of `collection` with its own aggregation pipeline (`{"pipeline": [...]}`), e.g. `anyChange`.
    public init(pool: MongoPool, collection: String = "jobs", pipeline: String, markers: (collection: String, id: String)? = nil) {
        self.pool = pool
        self.collection = collection
        pipelineJSON = pipeline
        self.markers = markers
    }

    /// Every change, reduced to the changed document's key (the dashboard's live views).
    public static let anyChange = #"{"pipeline": [{"$project": {"documentKey": 1, "operationType": 1}}]}"#

    /// The filter: inserts, replacements, updates that set `status: pending`
    /// or remove `notBefore` (wake-ups), and updates that set
    /// `cancelRequested: true` (a running job's cancel, so the supervisor never
    /// polls for it while the stream works); of the jobs and the marker
    /// collections only (the stream watches the database).
    static func pipeline(jobs: String, markers: String) -> String {
        """
        {"pipeline": [{"$match": {"ns.coll": {"$in": [\(JSONValue.string(jobs).jsonString), \(JSONValue.string(markers).jsonString)]},
          "$or": [
          {"operationType": {"$in": ["insert", "replace"]}},
          {"updateDescription.updatedFields.status": "pending"},
          {"updateDescription.removedFields": "notBefore"},
          {"updateDescription.updatedFields.cancelRequested": true}
        ]}}]}
        """
    }

    /// The id text of the job a change event asks to cancel, if it is one.
    public static func cancelledJob(in event: JSONValue) -> String? {
        guard event["updateDescription"]?["updatedFields"]?["cancelRequested"]?.boolValue == true,
              let id = event["documentKey"]?["_id"] else { return nil }
        return JobStore.idText(id)
    }

    /// Starts the watching thread; `onChange` gets the changed job's id text (nil when unreadable).
    public func startKeyed(onChange: @escaping @Sendable (String?) -> Void,
                           onState: @escaping @Sendable (Bool, String) -> Void) {
        start(onChange: { onChange($0?["documentKey"]?["_id"].map(JobStore.idText)) }, onState: onState)
    }

    /// Starts the watching thread; `onEvent` gets each change event of the
    /// jobs collection (nil when unreadable).
    public func startEvents(onEvent: @escaping @Sendable (JSONValue?) -> Void,
                            onState: @escaping @Sendable (Bool, String) -> Void) {
        start(onChange: onEvent, onState: onState)
    }

    private func start(onChange: @escaping @Sendable (JSONValue?) -> Void,
                       onState: @escaping @Sendable (Bool, String) -> Void) {
        let pipelineText = pipelineJSON
        Thread.detachNewThread { [self] in
            var backoff = 0.5
            var healthy: Bool?
            func report(_ ok: Bool, _ why: String) {
                if ok { backoff = 0.5 }
                if healthy != ok { healthy = ok; onState(ok, why) }
            }
            while !stopped.withLock({ $0 }) {
                let error = pool.withClient { client -> String in
                    var err = bson_error_t()
                    let optsJSON = #"{"maxAwaitTimeMS": 1000}"#
                    guard let pipeline = bson_new_from_json(pipelineText, pipelineText.utf8.count, &err),
                          let opts = bson_new_from_json(optsJSON, optsJSON.utf8.count, &err) else {
                        return MongoError(err, "change stream pipeline").description
                    }
                    defer { bson_destroy(pipeline); bson_destroy(opts) }
                    guard let stream = openStream(client, pipeline, opts) else { return "watch failed" }
                    defer { mongoc_change_stream_destroy(stream) }
                    // Open: every change from now on arrives (the caller may rely on that once it is proven).
                    var openReply: OpaquePointer?
                    if mongoc_change_stream_error_document(stream, &err, &openReply) {
                        return MongoError(err, "change stream").description
                    }
                    var check = markers.map { StreamCheck(markerId: $0.id) }
                    if check == nil { report(true, "change stream open") }
                    var doc: OpaquePointer?
                    while !stopped.withLock({ $0 }) {
                        if var c = check {
                            if c.due(.now), let verdict = c.started(.now, error: writeMarker(c.markerId)) {
                                report(false, Self.describe(verdict))
                            }
                            if let verdict = c.verdict(.now) { report(verdict == .passed, Self.describe(verdict)) }
                            check = c
                        }
                        let asked = ContinuousClock.now
                        if mongoc_change_stream_next(stream, &doc) {
                            let event = try? BSONDocument.json(of: doc!)
                            if let markers, let event, event["ns"]?["coll"]?.stringValue == markers.collection {
                                check?.saw(event)
                            } else if markers == nil || event?["ns"]?["coll"]?.stringValue ?? collection == collection {
                                onChange(event)
                            }
                            continue
                        }
                        // An empty answer that came early: the server woke the
                        // wait for a write this stream filters out. Ask again
                        // no sooner than `eagerInterval` after the last ask (a
                        // burst of writes costs a few getMores, not one each),
                        // or `patientInterval` while the caller is patient (a
                        // supervisor whose slots are all busy: only a cancel
                        // matters, within seconds).
                        let interval = patient.withLock { $0 } ? Self.patientInterval : Self.eagerInterval
                        let rest = interval - (ContinuousClock.now - asked)
                        if rest > .zero { Thread.sleep(forTimeInterval: rest / .seconds(1)) }
                        var reply: OpaquePointer?
                        if mongoc_change_stream_error_document(stream, &err, &reply) {
                            return MongoError(err, "change stream").description
                        }
                        if check == nil { report(true, "change stream open") }
                    }
                    return ""
                }
                if stopped.withLock({ $0 }) { break }
                if healthy != false { healthy = false; onState(false, error) }
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 30)
            }
        }
    }

    /// The stream: on the database when a marker collection is watched too, else on `collection`.
    private func openStream(_ client: OpaquePointer, _ pipeline: OpaquePointer, _ opts: OpaquePointer) -> OpaquePointer? {
        if markers != nil {
            let db = mongoc_client_get_database(client, pool.databaseName)!
            defer { mongoc_database_destroy(db) }
            return mongoc_database_watch(db, pipeline, opts)
        }
        let coll = mongoc_client_get_collection(client, pool.databaseName, collection)!
        defer { mongoc_collection_destroy(coll) }
        return mongoc_collection_watch(coll, pipeline, opts)
    }

    /// Writes the check's marker (on a client of its own); the error, if any.
    private func writeMarker(_ id: String) -> String? {
        guard let markers else { return nil }
        do {
            try pool.withClient { client in
                let coll = mongoc_client_get_collection(client, pool.databaseName, markers.collection)!
                defer { mongoc_collection_destroy(coll) }
                try StreamCheck.writeMarker(coll, id: id)
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    private static func describe(_ verdict: StreamCheck.Verdict) -> String {
        switch verdict {
        case .passed: "change stream open and checked: it delivered a change of every kind its filter matches"
        case .failed(let behaviour): behaviour
        }
    }

    /// While patient, the shortest time between two asks for more events
    /// (getMore): an event then waits at most this much longer.
    static let patientInterval = Duration.milliseconds(250)
    /// Otherwise: an event then waits at most this much longer.
    static let eagerInterval = Duration.milliseconds(50)

    /// Whether events may wait up to `patientInterval` (see `start`'s loop).
    public func setPatient(_ on: Bool) { patient.withLock { $0 = on } }

    /// Stops the thread within about a second.
    public func stop() { stopped.withLock { $0 = true } }
}
