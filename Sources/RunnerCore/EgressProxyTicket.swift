/// What the supervisor tells one job's egress proxy (`agent-runner-job
/// --egress-proxy`), as one JSON line on its stdin. The proxy runs outside
/// the job's namespaces, beside the supervisor but apart from its database
/// connection, and ends when its stdin closes.
public struct EgressProxyTicket: Sendable, Codable {
    /// The Unix socket to listen on (inside the workspace, in a folder the agent cannot write).
    public var socketPath: String
    /// Every destination the job may reach (derived rules plus JOB_EGRESS_ALLOW).
    public var rules: [EgressRule]
    /// Where `/provider/…` requests go, with the real key added; nil: no provider route.
    public var provider: ClineProvider?
    /// CLINE_API_KEY. Only the proxy holds it; it is never sent to the job child.
    public var providerKey: String?

    /// The path prefix of the provider route.
    public static let providerPrefix = "/provider"

    public init(socketPath: String, rules: [EgressRule], provider: ClineProvider?, providerKey: String?) {
        self.socketPath = socketPath
        self.rules = rules
        self.provider = provider
        self.providerKey = providerKey
    }
}

/// One NDJSON line the egress proxy writes on stdout.
public struct EgressEvent: Sendable, Codable, Equatable {
    /// "ready", "denied" or "log".
    public var type: String
    /// host:port, for "denied".
    public var target: String?
    /// A `DenyReason` raw value, for "denied".
    public var reason: String?
    /// Human-readable detail (never a secret).
    public var detail: String?

    public init(type: String, target: String? = nil, reason: String? = nil, detail: String? = nil) {
        self.type = type
        self.target = target
        self.reason = reason
        self.detail = detail
    }

    /// The job-log line for this event.
    public var logLine: String {
        switch type {
        case "denied": return "egress denied: \(target ?? "?") (\(detail ?? reason ?? "refused"))"
        default: return "egress: \(detail ?? type)"
        }
    }
}
