import Foundation

/// How the egress proxy absorbs a provider's transient faults on its keyed
/// routes (docs/budgets.md, "Provider faults"): PROVIDER_RETRIES and
/// PROVIDER_RETRY_WAIT_SECONDS. A 429, 529 or other 5xx answer, or a
/// connection that fails before any byte of an answer, is tried again after
/// an exponential backoff (1, 2, 4, … s, at most 60 s) or the answer's
/// `Retry-After`, while tries and the total wait remain; never once a byte
/// of the answer has reached the caller.
public struct ProviderRetry: Sendable, Codable, Equatable {
    /// Tries after the first.
    public var retries: Int
    /// The most the proxy waits in all for one call's retries.
    public var maxWaitSeconds: Int

    public init(retries: Int = 4, maxWaitSeconds: Int = 90) {
        self.retries = retries
        self.maxWaitSeconds = maxWaitSeconds
    }

    /// Whether an answer with `status` is retried.
    public static func isRetryable(status: Int) -> Bool { status == 429 || (500...599).contains(status) }

    /// The wait before retry number `attempt` (0-based) after an answer with
    /// `retryAfter` (its header, if any), when `waited` has passed already;
    /// nil: no more retries (the tries or the total wait are spent, or the
    /// provider asks for a longer wait than remains).
    public func delay(attempt: Int, retryAfter: String?, waited: Double, now: Date = Date()) -> Double? {
        guard attempt < retries else { return nil }
        let backoff = min(pow(2, Double(attempt)), 60)
        let asked = retryAfter.flatMap { Self.seconds($0, now: now) }
        let delay = asked.map { max($0, 0) } ?? backoff
        guard waited + delay <= Double(maxWaitSeconds) else { return nil }
        return delay
    }

    /// The wait a Google API error asks for in its body (`error.details[]`'s
    /// `RetryInfo.retryDelay`, "0.4s"), as seconds text; nil when none.
    public static func googleRetryDelay(_ body: [UInt8]) -> String? {
        guard body.firstRange(of: Array("retryDelay".utf8)) != nil,
              let details = (try? JSONValue.parse(Data(body)))?["error"]?["details"]?.arrayValue else { return nil }
        for detail in details {
            if let delay = detail["retryDelay"]?.stringValue, delay.hasSuffix("s"), Double(delay.dropLast()) != nil {
                return String(delay.dropLast())
            }
        }
        return nil
    }

    /// `Retry-After` as seconds: a number of seconds or an HTTP date.
    static func seconds(_ value: String, now: Date) -> Double? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let s = Double(text), s.isFinite, s >= 0 { return s }
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "GMT")
        format.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return format.date(from: text).map { $0.timeIntervalSince(now) }
    }
}
