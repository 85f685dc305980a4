import Foundation
import RunnerCore

/// Comparison of secrets whose running time depends only on their lengths,
/// never on where the first differing byte is.
public enum ConstantTime {
    /// Whether `a` and `b` hold the same bytes. Every byte of the longer one
    /// is visited, and the length difference is folded into the result.
    public static func equals(_ a: some StringProtocol, _ b: some StringProtocol) -> Bool {
        equals(Array(a.utf8), Array(b.utf8))
    }

    /// Byte form of `equals(_:_:)`.
    @inline(never)
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        let n = max(a.count, b.count)
        var diff = UInt64(a.count ^ b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0
            let y = i < b.count ? b[i] : 0
            diff |= UInt64(x ^ y)
        }
        return diff == 0
    }
}

/// A random, URL- and cookie-safe token with 256 bits from the system's CSPRNG.
public func randomToken() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
}

/// A signed-in operator's session: the cookie value and its CSRF token.
public struct Session: Sendable, Equatable {
    public let id: String
    public let csrf: String
    public let expires: Date
}

/// The dashboard's sessions, in memory (a restart signs everyone out).
/// Session ids are random 256-bit tokens looked up in constant time.
public final class SessionStore: Sendable {
    /// How long a session lasts after sign-in.
    public let lifetime: TimeInterval
    /// At most this many live sessions; the oldest are dropped beyond it.
    public let capacity: Int
    private let sessions = Locked<[Session]>([])

    public init(lifetime: TimeInterval = 12 * 3600, capacity: Int = 1000) {
        self.lifetime = lifetime
        self.capacity = capacity
    }

    /// Creates a session (after the token was checked).
    public func create(now: Date = Date()) -> Session {
        let session = Session(id: randomToken(), csrf: randomToken(), expires: now.addingTimeInterval(lifetime))
        sessions.withLock { all in
            all.removeAll { $0.expires <= now }
            all.append(session)
            if all.count > capacity { all.removeFirst(all.count - capacity) }
        }
        return session
    }

    /// The live session with cookie value `id`, or nil. Every stored id is
    /// compared in constant time, so timing does not reveal a prefix.
    public func session(_ id: String?, now: Date = Date()) -> Session? {
        guard let id, !id.isEmpty else { return nil }
        return sessions.withLock { all in
            var found: Session?
            for s in all where ConstantTime.equals(s.id, id) { found = s }
            guard let found, found.expires > now else { return nil }
            return found
        }
    }

    /// Ends the session with cookie value `id`.
    public func remove(_ id: String) {
        sessions.withLock { all in all.removeAll { ConstantTime.equals($0.id, id) } }
    }
}
