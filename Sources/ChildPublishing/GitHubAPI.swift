import ChildHTTP
import Foundation
import RunnerCore

/// GitHub's answer that refused a request: its HTTP status (0: no answer),
/// its message and the messages of its `errors`, and what its headers say
/// about rate limits. Decided by status and headers, never by the message.
public struct GitHubAPIError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    /// Seconds to wait (`Retry-After`, else until `x-ratelimit-reset`) when a rate limit refused.
    public var retryAfter: Int?
    /// A 403 or 429 that is a rate limit (`Retry-After`, or `x-ratelimit-remaining: 0`), not a permission.
    public var rateLimited: Bool
    /// The job's egress proxy refused the tunnel to the API (its CONNECT status), when it did.
    public var proxyStatus: Int

    public var description: String { status == 0 ? message : "HTTP \(status): \(message)" }
}

/// One repository's REST API, with the job's token, through the job's egress
/// proxy (a CONNECT tunnel; nil: direct, JOB_NETWORK=host). Paths are built
/// here only, below `/repos/{owner}/{repo}`; redirects are not followed.
/// Secondary rate limits are waited out (at most `maxWaitSeconds` each, 3 times).
final class GitHubAPI {
    let base: String
    let owner: String
    let repo: String
    private let token: String
    let proxy: String?
    /// The longest wait for one rate limit, and how many are waited out.
    static let maxWaitSeconds = 60, maxRateLimitWaits = 3
    /// How long to sleep: a parameter so that a test's fixture can answer `Retry-After: 1`.
    let sleep: (Int) -> Void
    let log: (String) -> Void

    init(apiURL: String, owner: String, repo: String, token: String, proxy: String?, log: @escaping (String) -> Void,
         sleep: @escaping (Int) -> Void = { Thread.sleep(forTimeInterval: Double($0)) }) {
        var b = apiURL
        while b.hasSuffix("/") { b.removeLast() }
        base = b
        self.owner = owner
        self.repo = repo
        self.token = token
        self.proxy = proxy
        self.log = log
        self.sleep = sleep
    }

    /// `{owner}/{repo}`.
    var fullName: String { "\(owner)/\(repo)" }

    /// Sends `method` to `/repos/{owner}/{repo}` + `path` (already escaped)
    /// and returns the answer's JSON; throws `GitHubAPIError` for any status
    /// outside 2xx once rate limits are waited out.
    func call(_ method: String, _ path: String, body: JSONValue? = nil) throws -> JSONValue {
        var waits = 0
        while true {
            do {
                return try once(method, "/repos/\(owner)/\(repo)" + path, body: body)
            } catch let e as GitHubAPIError where e.rateLimited && waits < Self.maxRateLimitWaits
                && (e.retryAfter ?? Int.max) <= Self.maxWaitSeconds {
                waits += 1
                log("GitHub's rate limit: waiting \(e.retryAfter ?? 0) s (Retry-After) before asking again")
                sleep(max(e.retryAfter ?? 1, 1))
            }
        }
    }

    private func once(_ method: String, _ path: String, body: JSONValue?) throws -> JSONValue {
        var headers = ["Authorization: Bearer \(token)", "Accept: application/vnd.github+json",
                       "X-GitHub-Api-Version: 2022-11-28", "User-Agent: agent-runner"]
        if body != nil { headers.append("Content-Type: application/json") }
        let response: HTTPResponse
        do {
            response = try CurlEasy().request(base + path, method: method, headers: headers,
                                              body: body.map { Data($0.jsonString.utf8) }, connectTimeout: 10,
                                              totalTimeout: 60, maxResponseBytes: 4 << 20, proxy: proxy)
        } catch let e as CurlError {
            throw GitHubAPIError(status: 0, message: e.message, retryAfter: nil, rateLimited: false,
                                 proxyStatus: e.proxyStatus)
        }
        let json = try? JSONValue.parse(response.body)
        guard (200..<300).contains(response.status) else {
            throw Self.refusal(status: response.status, json: json, headers: response.headers)
        }
        return json ?? .null
    }

    /// GitHub's refusal, read from its status, headers and JSON body.
    static func refusal(status: Int, json: JSONValue?, headers: [String: String]) -> GitHubAPIError {
        var message = json?["message"]?.stringValue ?? "no message"
        let details = (json?["errors"]?.arrayValue ?? []).prefix(10).compactMap { e -> String? in
            e["message"]?.stringValue ?? e.stringValue
                ?? e["code"]?.stringValue.map { code in [e["field"]?.stringValue, code].compactMap { $0 }.joined(separator: " ") }
        }
        if !details.isEmpty { message += " (" + details.joined(separator: "; ") + ")" }
        message = LogBounds.clip(message, bytes: 2048)
        let retryAfter = headers["retry-after"].flatMap { Int($0) }
        let exhausted = headers["x-ratelimit-remaining"] == "0"
        // An epoch second; any value (even Int.min) gives a wait of 0…3600 s, never a trap.
        let reset = headers["x-ratelimit-reset"].flatMap { Int($0) }
            .map { min(max($0, 0), Int(Date().timeIntervalSince1970) + 3600) - Int(Date().timeIntervalSince1970) }
        let limited = (status == 403 || status == 429) && (retryAfter != nil || exhausted)
        return GitHubAPIError(status: status, message: message, retryAfter: retryAfter ?? (exhausted ? reset.map { max($0, 1) } : nil),
                              rateLimited: limited, proxyStatus: 0)
    }
}
