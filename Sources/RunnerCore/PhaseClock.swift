/// Milliseconds per phase of one job, for its `metadata.timings`
/// (docs/contract.md): each `lap` charges the time since the previous one to
/// a phase. The one clock of the supervisor's launch, the job child's stages
/// and the publisher's steps.
public struct PhaseClock: Sendable {
    /// The phases measured so far, in milliseconds.
    public private(set) var timings: [String: Int] = [:]
    private var mark = ContinuousClock.now

    public init() {}

    /// Charges the time since the last lap (or the start) to `phase`.
    public mutating func lap(_ phase: String) {
        let now = ContinuousClock.now
        timings[phase, default: 0] += (now - mark).milliseconds
        mark = now
    }

    /// Runs `body` and records its milliseconds as `phase`, a sub-phase
    /// inside the current lap (which still counts it).
    public mutating func measure<T>(_ phase: String, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { timings[phase] = (ContinuousClock.now - start).milliseconds }
        return try body()
    }

    /// Sets a phase measured elsewhere (the publisher's, in the child's result).
    public mutating func record(_ phase: String, _ milliseconds: Int) { timings[phase] = milliseconds }
}

extension Duration {
    /// Whole milliseconds (truncated).
    public var milliseconds: Int { Int(nanoseconds / 1_000_000) }

    /// Whole nanoseconds (truncated).
    public var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
