/// Milliseconds per phase of one job, as the supervisor sees them, for the
/// job's `metadata.timings` (docs/contract.md): each `lap` charges the time
/// since the previous one to a phase.
struct PhaseClock: Sendable {
    private(set) var timings: [String: Int] = [:]
    private var mark = ContinuousClock.now

    /// Charges the time since the last lap (or the start) to `phase`.
    mutating func lap(_ phase: String) {
        let now = ContinuousClock.now
        timings[phase, default: 0] += (now - mark).milliseconds
        mark = now
    }
}
