#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// Who owns the job's tree once the supervisor asks the job child to stop
/// (`ChildStop`): the pipeline, which goes on to publish once generation is
/// over, or the checkpoint, which takes over while generation runs. The
/// generation's steps that start a process or write the tree run under the
/// gate's lock (`whileGenerating`), so that once the checkpoint holds the
/// tree nothing of the pipeline starts or writes again: its thread parks
/// until the child exits.
public enum StopGate {
    private enum State { case generating, publishing, stopping }
    private static let state = Locked(State.generating)

    /// The checkpoint takes the tree: true while generation runs (from now
    /// on no agent process starts and the pipeline writes nothing); false
    /// once the pipeline has passed generation (then it owns the tree).
    public static func claimForStop() -> Bool {
        state.withLock { s in
            guard s == .generating else { return false }
            s = .stopping
            return true
        }
    }

    /// The pipeline leaves generation for validation and publishing; parks
    /// the calling thread for good when the checkpoint took the tree.
    public static func passGeneration() {
        let passed = state.withLock { s -> Bool in
            guard s == .generating else { return s == .publishing }
            s = .publishing
            return true
        }
        if !passed { park() }
    }

    /// Runs `body` (an agent's spawn, a generator's write, the clean-up of a
    /// failed generator's tree) unless the checkpoint took the tree, in which
    /// case the calling thread parks for good.
    public static func whileGenerating<T>(_ body: () throws -> T) rethrows -> T {
        let ran: [T] = try state.withLock { s in s == .stopping ? [] : [try body()] }
        guard let result = ran.first else { park() }
        return result
    }

    /// Parks the calling thread when the checkpoint took the tree.
    public static func parkIfStopping() {
        if state.withLock({ $0 == .stopping }) { park() }
    }

    /// Waits for the process to end (the checkpoint's thread ends it with `exit`).
    static func park() -> Never {
        while true { sleep(3600) }
    }
}
