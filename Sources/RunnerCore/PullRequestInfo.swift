/// The pull request a job opened or updated: the job's
/// `metadata.pullRequest` (docs/contract.md, Publishing).
public struct PullRequestInfo: Sendable, Codable, Hashable {
    public var number: Int
    /// GitHub's page of the pull request (`html_url`).
    public var url: String
    /// The head (the publish branch) and the base (the repository's default branch).
    public var branch: String
    public var base: String
    public var headSha: String
    /// GitHub's `state` (open).
    public var state: String
    /// `created` or `updated`.
    public var action: String
    public var draft: Bool?

    public init(number: Int, url: String, branch: String, base: String, headSha: String, state: String, action: String,
                draft: Bool? = nil) {
        self.number = number
        self.url = url
        self.branch = branch
        self.base = base
        self.headSha = headSha
        self.state = state
        self.action = action
        self.draft = draft
    }

    /// Every string at most `bytes` long (the supervisor does not rely on the child).
    public func bounded(_ bytes: Int) -> PullRequestInfo {
        var p = self
        for path in [\PullRequestInfo.url, \.branch, \.base, \.headSha, \.state, \.action] {
            p[keyPath: path] = LogBounds.clip(p[keyPath: path], bytes: bytes)
        }
        return p
    }

    /// As a JSON object.
    public var json: JSONValue {
        var o: [String: JSONValue] = ["number": .int(Int64(number)), "url": .string(url), "branch": .string(branch),
                                      "base": .string(base), "headSha": .string(headSha), "state": .string(state),
                                      "action": .string(action)]
        if let draft { o["draft"] = .bool(draft) }
        return .object(o)
    }
}

/// What the job's egress proxy saw of the agent phase, handed to the child
/// with the push token (a pull request's body reports it): the denied
/// requests by host, and the model usage the proxy metered. Bounded: at
/// most `maxHosts` hosts.
public struct EgressReport: Sendable, Codable, Equatable {
    /// host (without its port) → how many requests to it were denied.
    public var denied: [String: Int] = [:]
    /// The most hosts kept; later ones count under `otherHosts`.
    public static let maxHosts = 50
    public var otherHosts = 0
    /// The model calls' usage and cost as the egress proxy metered them on its
    /// keyed routes, when the supervisor has them; the body prefers it to the
    /// agent's own report.
    public var metered: AgentUsage?

    public init() {}

    /// Counts a `denied` event (`target` is host:port or [v6]:port).
    public mutating func record(deniedTarget target: String) {
        var host = target
        if let colon = host.lastIndex(of: ":"), !host.hasSuffix("]") { host = String(host[..<colon]) }
        host = LogBounds.clip(host, bytes: 255)
        if denied[host] == nil, denied.count >= Self.maxHosts { otherHosts += 1; return }
        denied[host, default: 0] += 1
    }
}
