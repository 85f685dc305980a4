import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// The egress proxy absorbs a provider's transient faults: a 429, 529 or
/// other 5xx answer, or a connection cut before any byte of an answer, is
/// tried again after `Retry-After` or an exponential backoff, within
/// PROVIDER_RETRIES and PROVIDER_RETRY_WAIT_SECONDS; never once a byte of
/// the answer has reached the agent. The delays are read from the stand-in
/// provider's own request log.
@Suite(.serialized) struct ProviderRetryTests {
    static let call = #"{"model":"claude-haiku-4-5","max_tokens":100}"#

    /// Seconds between the provider's requests.
    static func gaps(_ rig: ProxyProcessRig) throws -> [Double] {
        let times = try rig.requests().compactMap { entry -> Double? in
            if case .double(let t)? = entry["t"] { return t }
            return entry["t"]?.intValue.map(Double.init)
        }
        return zip(times.dropFirst(), times).map { $0 - $1 }
    }

    @Test func a429IsRetriedAfterItsRetryAfter() async throws {
        let rig = try await ProxyProcessRig(.anthropic, scenario: "retry429")
        defer { rig.stop() }
        let answer = try await rig.post("/provider/v1/messages", Self.call)
        #expect(answer.hasPrefix("HTTP/1.1 200") && !answer.contains("rate_limit_error"), "the agent saw the 429 nowhere: \(answer)")
        let gaps = try Self.gaps(rig)
        #expect(gaps.count == 1 && gaps[0] >= 1.0, "Retry-After: 1 honoured: \(gaps)")
        let retry = await rig.events(.retry, atLeast: 1)
        #expect(retry.count == 1 && retry[0].detail == "provider: POST /v1/messages answered 429; retry 1 of 4 in 1.0 s",
                "\(retry)")
        let usage = try #require(await rig.events(.usage, atLeast: 1).first?.usage)
        #expect(usage.retries == 1 && usage.status == 200 && usage.inputTokens == 1200, "\(usage)")
    }

    /// A 529 every time: retried with a doubling backoff until the tries
    /// are spent, then the provider's own answer reaches the agent.
    @Test func an529IsRetriedWithBackoffUntilTheTriesAreSpent() async throws {
        let rig = try await ProxyProcessRig(.anthropic, scenario: "overloaded", retry: ProviderRetry(retries: 2, maxWaitSeconds: 30))
        defer { rig.stop() }
        let answer = try await rig.post("/provider/v1/messages", Self.call)
        #expect(answer.hasPrefix("HTTP/1.1 529") && answer.contains("overloaded_error"), "\(answer)")
        let gaps = try Self.gaps(rig)
        #expect(gaps.count == 2 && gaps[0] >= 1.0 && gaps[1] >= 2.0, "\(gaps)")
        #expect(await rig.events(.retry, atLeast: 2).count == 2)
    }

    /// The total wait bounds the retries: with 2 s, the second wait (2 s) no longer fits.
    @Test func theTotalWaitBoundsTheRetries() async throws {
        let rig = try await ProxyProcessRig(.anthropic, scenario: "overloaded", retry: ProviderRetry(retries: 4, maxWaitSeconds: 2))
        defer { rig.stop() }
        let answer = try await rig.post("/provider/v1/messages", Self.call)
        #expect(answer.hasPrefix("HTTP/1.1 529"), "\(answer)")
        #expect(try rig.requests().count == 2)
    }

    /// A connection reset before any byte of the answer is tried again.
    @Test func aResetBeforeTheAnswerIsRetried() async throws {
        let rig = try await ProxyProcessRig(.anthropic, scenario: "reset")
        defer { rig.stop() }
        let answer = try await rig.post("/provider/v1/messages", Self.call)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        #expect(try rig.requests().count == 2)
        let retry = await rig.events(.retry, atLeast: 1)
        #expect(retry.first?.detail?.contains("connection failed") == true, "\(retry)")
    }

    /// A stream cut after its first event reached the agent is not retried:
    /// the agent sees the cut.
    @Test func aMidStreamResetIsNotRetried() async throws {
        let rig = try await ProxyProcessRig(.anthropic, scenario: "midstream")
        defer { rig.stop() }
        let answer = try await rig.post("/provider/v1/messages", #"{"model":"claude-haiku-4-5","max_tokens":100,"stream":true}"#)
        #expect(answer.hasPrefix("HTTP/1.1 200") && answer.contains("message_start") && !answer.contains("message_stop"),
                "\(answer)")
        let usage = try #require(await rig.events(.usage, atLeast: 1).first?.usage)
        #expect(usage.retries == 0 && usage.status == 0, "\(usage)")
        #expect(try rig.requests().count == 1, "never retried")
        #expect(rig.allEvents.allSatisfy { $0.kind != .retry })
    }

    @Test func theDelayHonoursRetryAfterAndTheBounds() {
        let retry = ProviderRetry(retries: 4, maxWaitSeconds: 90)
        #expect([0, 1, 2, 3].map { retry.delay(attempt: $0, retryAfter: nil, waited: 0) } == [1, 2, 4, 8])
        #expect(retry.delay(attempt: 4, retryAfter: nil, waited: 0) == nil, "PROVIDER_RETRIES spent")
        #expect(retry.delay(attempt: 0, retryAfter: "7", waited: 0) == 7)
        #expect(retry.delay(attempt: 0, retryAfter: "7", waited: 85) == nil, "past PROVIDER_RETRY_WAIT_SECONDS")
        let date = "Sun, 15 Jan 2027 08:00:05 GMT"
        let format = DateFormatter()
        format.locale = Locale(identifier: "en_US_POSIX")
        format.timeZone = TimeZone(identifier: "GMT")
        format.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let at = format.date(from: date) else { Issue.record("unparsable test date"); return }
        #expect(retry.delay(attempt: 0, retryAfter: date, waited: 0, now: at.addingTimeInterval(-3)) == 3)
        #expect(ProviderRetry.googleRetryDelay(Array(#"{"error":{"details":[{"retryDelay":"0.4s"}]}}"#.utf8)) == "0.4")
    }
}
