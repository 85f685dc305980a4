import Foundation

/// What the supervisor tells one job's egress proxy (`agent-runner-job
/// --egress-proxy`), as one JSON line on its stdin. The proxy runs outside
/// the job's namespaces, beside the supervisor but apart from its database
/// connection, and ends when its stdin closes.
public struct EgressProxyTicket: Sendable, Codable, CustomStringConvertible {
    /// The Unix socket to listen on (inside the workspace, in a folder the agent cannot write).
    public var socketPath: String
    /// Every destination the job may CONNECT to (the git remote's rule plus JOB_EGRESS_ALLOW; the keyed routes need none).
    public var rules: [EgressRule]
    /// Where `/provider/…` requests go, with the real key added; nil: no provider route.
    public var provider: ClineProvider?
    /// CLINE_API_KEY. Only the proxy holds it; it is never sent to the job child.
    public var providerKey: String?
    /// CLINE_PROVIDER_HEADERS: added to every provider-route request (they
    /// may be secret, like the key: never logged, never sent to the job child).
    public var providerHeaders: [ProviderHeader]
    /// The Gemini route (`/gemini/…` to GEMINI_API_BASE, GOOGLE_GEMINI_API_KEY
    /// added); nil: no Gemini route.
    public var gemini: GeminiUpstream?
    /// The job's budget, enforced on both keyed routes (nil or empty: none).
    public var budget: JobBudget?
    /// The prices the calls are metered with (nil: `PriceTable.shipped`).
    public var prices: PriceTable?
    /// How provider faults are retried (nil: `ProviderRetry()`'s defaults).
    public var retry: ProviderRetry?
    /// The lowest daily budget in dollars that applies to the job (nil:
    /// none): each model call first reserves its bound with the supervisor
    /// (a `reserve` event, answered on the proxy's stdin: `SharedSpendAnswer`)
    /// and starts only once it is reserved; a request without an output
    /// limit gets one, at most what this buys.
    public var dailyBudgetUSD: Double?

    /// The path prefix of the provider route.
    public static let providerPrefix = "/provider"

    public init(socketPath: String, rules: [EgressRule], provider: ClineProvider?, providerKey: String?,
                providerHeaders: [ProviderHeader] = [], gemini: GeminiUpstream? = nil,
                budget: JobBudget? = nil, prices: PriceTable? = nil, retry: ProviderRetry? = nil) {
        self.socketPath = socketPath
        self.rules = rules
        self.provider = provider
        self.providerKey = providerKey
        self.providerHeaders = providerHeaders
        self.gemini = gemini
        self.budget = budget
        self.prices = prices
        self.retry = retry
    }

    /// Without the key and the operator's header values (an interpolated ticket is safe to log).
    public var description: String {
        "EgressProxyTicket(socketPath: \(socketPath), rules: \(rules.count), provider: \(provider?.kind.rawValue ?? "none"), "
            + "providerKey: \(providerKey == nil ? "none" : "redacted"), providerHeaders: \(providerHeaders.count) redacted, "
            + "gemini: \(gemini.map(\.description) ?? "none"))"
    }
}

/// The egress proxy's side of the Gemini route: where it forwards and the
/// key it adds. Only the proxy holds the key; the job child and the doctor's
/// probe hold the route's token instead (`GeminiRoute`).
public struct GeminiUpstream: Sendable, Codable, CustomStringConvertible {
    /// GEMINI_API_BASE.
    public var apiBase: String
    /// GOOGLE_GEMINI_API_KEY, sent upstream as `x-goog-api-key`.
    public var apiKey: String
    /// The token every `/gemini/…` request must carry in `GeminiRoute.tokenHeader`.
    public var routeToken: String

    public init(apiBase: String, apiKey: String, routeToken: String) {
        self.apiBase = apiBase
        self.apiKey = apiKey
        self.routeToken = routeToken
    }

    /// Without the key and the token (an interpolated upstream is safe to log).
    public var description: String { "GeminiUpstream(apiBase: \(apiBase), apiKey: redacted, routeToken: redacted)" }
}

/// How trusted code (the job child's Gemini generator, the doctor's probe)
/// calls the Gemini API without its key: HTTP requests to `/gemini/<path>`
/// on the egress proxy's Unix socket, carrying the route token, which only
/// that code has: it is in the ticket, never in a file or the environment.
/// The agent cannot read it only with SANDBOX=enforce, where the job child
/// is non-dumpable and the agent runs with every capability dropped (so it
/// cannot read the child's memory through /proc or ptrace); with the sandbox
/// off, a process of the same user can. The proxy checks the token, drops every credential
/// header, adds `x-goog-api-key` and forwards to GEMINI_API_BASE + `<path>`.
public struct GeminiRoute: Sendable, Codable, Equatable, CustomStringConvertible {
    /// The egress proxy's Unix socket.
    public var socketPath: String
    /// The route token (one per job; never the key).
    public var token: String

    /// The path prefix of the route.
    public static let prefix = "/gemini"
    /// The request header that carries the route token.
    public static let tokenHeader = "X-Agent-Runner-Route"

    public init(socketPath: String, token: String) {
        self.socketPath = socketPath
        self.token = token
    }

    /// Without the token (an interpolated route is safe to log).
    public var description: String { "GeminiRoute(socketPath: \(socketPath), token: redacted)" }

    /// A fresh route token: 32 random bytes as hex.
    public static func newToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }
}
