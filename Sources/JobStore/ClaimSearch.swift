import Foundation
import RunnerCore

/// Finds and claims the next runnable job with index range scans whose cost
/// does not grow with the queue (README, Performance).
///
/// Why not one findAndModify sorted by `priority desc, createdAt asc`: a
/// MongoDB-wire server may satisfy that sort from `claim_order`, but SecantusDB
/// (the server the tests and the benchmark use) materialises and sorts every
/// pending job, and its findAndModify re-scans the collection to write. What
/// stays cheap everywhere is a scan bounded on both index prefixes:
/// `{status: "pending", priority: p, createdAt: {$gte: epoch, $lt: X}}` on
/// `claim_order`, followed by an `updateOne` on `_id` that re-checks the claim
/// conditions, so the claim stays atomic.
///
/// The creation date has two names (`DocumentFields.createdAt`): the seed's
/// `createdAt` and the Architex app's `created_at`. Each window is read once
/// per name, each on its own index (`claim_order`, `claim_order_created_at`);
/// the `$gte: epoch` bound keeps a scan off the other shape's jobs, whose
/// missing field sorts before every date. A job's date is `createdAt`, else
/// `created_at`; jobs with neither are read on `claim_undated`.
///
/// The search keeps, per process, the priorities it has seen and, per priority,
/// a hint: the `createdAt` of the last job it claimed there. Each claim
/// 1. takes a running job whose lease expired (range on `lease_expiry`);
/// 2. probes for priorities it does not know yet (ranges between the known ones);
/// 3. walks the priorities from the highest, jobs without one last, and in each
///    looks below `hint + w`, growing `w` fourfold until a window holds a claimable job
///    (once a window reaches past now, the next and last one reaches the horizon).
///    The window has no lower bound but the epoch, so older jobs (retries keep
///    their creation date) are always seen; its cost is the number of pending jobs
///    older than the window's end, normally a handful;
/// 4. when all that finds nothing, runs the plain sorted query (then the same
///    guarded updateOne on its first eligible match, busy projects skipped): it
///    covers documents the ranges cannot see (a creation date that is not a
///    date or precedes 1970, a fractional priority). When it finds nothing either, it waits
///    `fallbackInterval` before running again, so an idle or blocked queue
///    does not pay for a full scan on every wake-up.
/// The first claim of a process reads every pending job's priority and
/// `createdAt` once to learn the priorities and where each starts.
///
/// While the queue is watched (the supervisor's change stream works), the
/// candidates a search read after the one it claimed are kept, in order, and
/// the next claims try them first, one findAndModify each, without searching
/// again: a claim then costs one request. They are dropped on any change that
/// can make another job claimable (the change stream's events, a deferred
/// job's due time: `invalidate()`), and after `cacheAge` at the latest (an
/// expired lease, which no event announces, waits that much longer). Likewise
/// a search that found no pending job at all is remembered until the queue
/// changes: the next claims only look for expired leases.
final class ClaimSearch: Sendable {
    private struct State {
        var warm = false
        /// Known integer priorities, highest first.
        var bands: [Int64] = []
        /// Per priority (nil: none), the createdAt (ms) to start looking from.
        var hints: [Int64?: Int64] = [:]
        var lastFallback: ContinuousClock.Instant?
        /// Whether candidates may be kept between claims (the queue is watched).
        var watched = false
        /// Candidates read by the last search, after the one it claimed, in claim order.
        var cached: [JSONValue] = []
        var cachedBand: Int64?
        var cachedAt = ContinuousClock.now
        /// Per priority, the width (ms) of the first window, adapted so that a
        /// window holds about `windowTarget` jobs (kept for the next claims).
        var widths: [Int64?: Int64] = [:]
        /// When a search last found no pending job at all (while watched).
        var emptyAt: ContinuousClock.Instant?
        /// Counts the queue's changes (`invalidate`): a search keeps what it
        /// learnt (its candidates, an empty queue) only if none came while it ran.
        var generation: UInt64 = 0
        #if DEBUG
        var fallbacks = 0
        #endif
    }

    private let state = Locked(State())
    static let fallbackInterval = Duration.seconds(30)
    /// How many jobs a first window should hold: enough to keep for the next
    /// claims, few enough to read cheaply (the width grows fourfold, up to 10
    /// minutes, while a window that claimed held fewer than this, and shrinks
    /// in proportion when it held over 8×; back to `firstWidth` when the queue changes).
    static let windowTarget = 8
    static let firstWidth: Int64 = 64
    /// The longest candidates are kept between claims.
    static let cacheAge = Duration.seconds(5)

    /// Whether a change stream reports every change that can make a job
    /// claimable (only then are candidates kept between claims).
    func setWatched(_ on: Bool) {
        state.withLock { s in
            s.watched = on
            if !on { s.cached = [] }
        }
    }

    /// Drops the kept candidates, the knowledge that the queue is empty and
    /// the adapted window widths (a burst of new jobs must not make the
    /// next window read them all): the queue changed.
    func invalidate() {
        state.withLock { s in
            s.cached = []
            s.emptyAt = nil
            s.widths = [:]
            s.generation &+= 1
        }
    }

    /// Whether a search found the queue empty lately and nothing changed since.
    private var knownEmpty: Bool {
        state.withLock { s in
            guard s.watched, let at = s.emptyAt, ContinuousClock.now - at < Self.cacheAge else { return false }
            return true
        }
    }

    /// The next kept candidate, if the cache is still good.
    private func popCached() -> (JSONValue, Int64?)? {
        state.withLock { s in
            guard s.watched, !s.cached.isEmpty, ContinuousClock.now - s.cachedAt < Self.cacheAge else {
                s.cached = []
                return nil
            }
            return (s.cached.removeFirst(), s.cachedBand)
        }
    }

    private func keep(_ rest: ArraySlice<JSONValue>, band: Int64?, generation: UInt64) {
        state.withLock { s in
            guard s.watched, s.generation == generation else { return }
            s.cached = Array(rest)
            s.cachedBand = band
            s.cachedAt = .now
        }
    }
    /// What a candidate is read with: all but its logs (the claim returns it,
    /// with the claim applied, instead of reading it back).
    static let fields: JSONValue = ["logs": 0]
    /// What learning the queue's shape reads.
    static let shapeFields: JSONValue = .object(
        ["priority": 1].merging(DocumentFields.createdAt.map { ($0, JSONValue.int(1)) }) { $1 })
    /// The window's lower bound: every date sorts above it, null and other types below.
    static let epoch = JSONValue.date(Date(timeIntervalSince1970: 0))
    /// Ends of windows past now + this are not searched (only the fallback sees them).
    static let horizonMs: Int64 = 86_400_000
    /// Where a priority without a hint starts: a minute ago (the window reaches
    /// back to the epoch, so older jobs are seen all the same).
    static let recentMs: Int64 = 60_000

    /// Claims one job or returns nil. Runs synchronously on a pool thread.
    /// `tryClaim` runs the claiming updateOne on one candidate (read with
    /// `fields`) with the conditions it re-checks, and returns the claimed
    /// document when this runner won it; `fallback` is the plain sorted claim
    /// of step 4 (the claimed document, or nil). Returns the claimed document.
    func next(_ coll: OpaquePointer, now: Date, busy: Set<String>,
              tryClaim: (_ candidate: JSONValue, _ guard: [String: JSONValue]) throws -> JSONValue?,
              fallback: () throws -> JSONValue?) throws -> JSONValue? {
        let nowJSON = JSONValue.date(now)
        let nowMs = Int64((now.timeIntervalSince1970 * 1000).rounded())
        let pendingGuard = { (doc: JSONValue) in JobStore.pendingGuard(doc, now: nowJSON) }
        // A change the stream reports after this point makes what this search reads stale.
        let generation = state.withLock { $0.generation }
        // 0. The candidates the last search read, while nothing changed.
        while let (doc, band) = popCached() {
            guard eligible(doc, nowMs: nowMs, busy: busy), let claimed = try tryClaim(doc, pendingGuard(doc)) else { continue }
            if let ms = Job.createdMilliseconds(doc) { state.withLock { $0.hints[band] = ms } }
            return claimed
        }
        // 1. A dead runner's job first: it has waited longest.
        let expired = try CollectionOps.find(coll, filter: .object(JobStore.expiredLease(now: nowJSON)),
                                             sortJSON: #"{"lease.expiresAt": 1}"#, limit: 5, projection: Self.fields)
        for doc in expired {
            if let claimed = try tryClaim(doc, JobStore.expiredLease(now: nowJSON)) { return claimed }
        }
        // The last search found no pending job at all and no change came since.
        if knownEmpty { return nil }
        var sawAny = false
        // 2. Priorities: learn all once, then probe the gaps for new ones.
        if !state.withLock({ $0.warm }) {
            learn(try CollectionOps.find(coll, filter: ["status": JobStatus.pending.json], projection: Self.shapeFields))
            state.withLock { $0.warm = true }
        }
        for range in gapRanges() {
            learn(try CollectionOps.find(coll, filter: ["status": JobStatus.pending.json, "priority": range],
                                         projection: Self.shapeFields))
        }
        // 3. Each priority, highest first, then the jobs without one.
        for band in state.withLock({ $0.bands.map { Optional($0) } }) + [nil] {
            let priority: JSONValue = band.map { .int($0) } ?? .null
            // Jobs without a creation date sort first (as in MongoDB's order).
            var undated: [String: JSONValue] = ["status": JobStatus.pending.json, "priority": priority]
            for name in DocumentFields.createdAt { undated[name] = .null }
            var candidates = try CollectionOps.find(coll, filter: .object(undated), projection: Self.fields)
            var start = state.withLock { $0.hints[band] } ?? nowMs - Self.recentMs
            var width = state.withLock { $0.widths[band] } ?? Self.firstWidth
            var windowed = false
            var seen = !candidates.isEmpty
            while true {
                sawAny = sawAny || !candidates.isEmpty
                for (i, doc) in candidates.enumerated() where eligible(doc, nowMs: nowMs, busy: busy) {
                    guard let claimed = try tryClaim(doc, pendingGuard(doc)) else { continue }
                    if let ms = Job.createdMilliseconds(doc) { state.withLock { $0.hints[band] = ms } }
                    keep(candidates[(i + 1)...], band: band, generation: generation)
                    if windowed { adapt(band, width: width / 4, held: candidates.count) }
                    return claimed
                }
                // Once a window reached past now, one last window to the horizon.
                let horizon = nowMs + Self.horizonMs
                if start >= horizon { break }
                let end = start > nowMs ? horizon : min(start + width, horizon)
                candidates = try window(coll, priority: priority, end: end)
                windowed = true
                seen = seen || !candidates.isEmpty
                // Geometric growth bounds the probes per priority (about 15 up to the horizon).
                start = end
                width *= 4
            }
            // Nothing claimable here: forget an empty priority (the gap probes find
            // it again), and start the next search near now.
            if !seen {
                state.withLock { s in
                    if let band { s.bands.removeAll { $0 == band } }
                    s.hints[band] = nil
                }
            }
        }
        // 4. Rarely, the full sorted claim for what the ranges cannot see.
        let due = state.withLock { s -> Bool in
            guard s.lastFallback.map({ ContinuousClock.now - $0 >= Self.fallbackInterval }) ?? true else { return false }
            s.lastFallback = .now
            #if DEBUG
            s.fallbacks += 1
            #endif
            return true
        }
        guard due, let claimed = try fallback() else {
            // Nothing pending at all: say so until the queue changes, unless it
            // changed while this search read it (a job inserted after its reads).
            if !sawAny {
                state.withLock { s in if s.watched, s.bands.isEmpty, s.generation == generation { s.emptyAt = .now } }
            }
            return nil
        }
        // It found something the ranges missed: there may be more, so the next
        // empty search may fall back again at once.
        state.withLock { $0.lastFallback = nil }
        return claimed
    }

    /// The next first window of `band`: wider when the window that claimed
    /// (`width` wide) held few jobs, narrower when it held many.
    private func adapt(_ band: Int64?, width: Int64, held: Int) {
        let next: Int64
        if held < Self.windowTarget { next = min(width * 4, 600_000) }
        else if held > Self.windowTarget * 8 { next = max(width * Int64(Self.windowTarget) / Int64(held), 1) }
        else { next = width }
        state.withLock { $0.widths[band] = next }
    }

    /// The pending jobs of one priority created before `end` (ms), under either
    /// name of the creation date, oldest first, each once.
    private func window(_ coll: OpaquePointer, priority: JSONValue, end: Int64) throws -> [JSONValue] {
        var docs: [JSONValue] = []
        var seen = Set<String>()
        for name in DocumentFields.createdAt {
            var filter: [String: JSONValue] = ["status": JobStatus.pending.json, "priority": priority]
            filter[name] = ["$gte": Self.epoch, "$lt": .date(Self.date(end))]
            for doc in try CollectionOps.find(coll, filter: .object(filter), projection: Self.fields)
            where seen.insert(doc["_id"]?.jsonString ?? "").inserted {
                docs.append(doc)
            }
        }
        return docs.sorted { (Job.createdMilliseconds($0) ?? 0) < (Job.createdMilliseconds($1) ?? 0) }
    }

    #if DEBUG
    /// How many times the full sorted claim ran (a test hook: debug builds only).
    var fallbackCount: Int { state.withLock { $0.fallbacks } }
    #endif

    private func eligible(_ doc: JSONValue, nowMs: Int64, busy: Set<String>) -> Bool {
        if doc["cancelRequested"]?.boolValue == true { return false }
        if let notBefore = doc["notBefore"]?.dateMilliseconds, notBefore > nowMs { return false }
        if let project = DocumentFields.first(DocumentFields.projectRef, in: doc), busy.contains(project.jsonString) {
            return false
        }
        return true
    }

    /// Records priorities and the oldest createdAt of each from projected documents.
    private func learn(_ docs: [JSONValue]) {
        guard !docs.isEmpty else { return }
        state.withLock { s in
            for doc in docs {
                let band: Int64? = doc["priority"].flatMap { $0.isNull ? nil : $0.intValue }
                if doc["priority"]?.isNull == false, band == nil { continue } // not an integer: the fallback's
                if let band, !s.bands.contains(band) { s.bands.append(band) }
                if let ms = Job.createdMilliseconds(doc) { s.hints[band] = min(s.hints[band] ?? ms, ms) }
            }
            s.bands.sort(by: >)
        }
    }

    /// Priority ranges holding no known priority: above, between and below them.
    private func gapRanges() -> [JSONValue] {
        let bands = state.withLock { $0.bands }
        guard let top = bands.first, let bottom = bands.last else {
            return [["$gte": ["$numberDouble": "-Infinity"]]]
        }
        var ranges: [JSONValue] = [["$gt": .int(top)]]
        for (high, low) in zip(bands, bands.dropFirst()) where high - low > 1 {
            ranges.append(["$gt": .int(low), "$lt": .int(high)])
        }
        ranges.append(["$lt": .int(bottom)])
        return ranges
    }

    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
}
