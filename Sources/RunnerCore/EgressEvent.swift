import Foundation

/// One NDJSON line the egress proxy writes on stdout (docs/contract.md,
/// "Supervisor ↔ egress proxy"), decoded once by the supervisor.
public struct EgressEvent: Sendable, Codable, Equatable {
    /// What the line reports; its JSON name is `type`.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// The proxy listens on its socket (the first line).
        case ready
        /// A refused destination or keyed request (`target`, `reason`, `detail`).
        case denied
        /// A tunnel or plain-HTTP request the policy let through (`target`, `detail`).
        case allowed
        /// A line for the job's log (`detail`).
        case log
        /// One model call ended (`usage`).
        case usage
        /// A budget crossed a threshold or was spent (`budget`).
        case budget
        /// A provider's answer was retried (`detail`).
        case retry
        /// A model call asks the supervisor to reserve its bound against the
        /// daily budgets before it starts (`reservation`); answered on the
        /// proxy's stdin (`SharedSpendAnswer`).
        case reserve
    }

    public var kind: Kind
    /// host:port, for `denied`.
    public var target: String?
    /// A `DenyReason` raw value, for `denied`.
    public var reason: String?
    /// Human-readable detail (never a secret).
    public var detail: String?
    /// The call's metering, for `usage`.
    public var usage: CallUsage?
    /// The budget's state, for `budget`.
    public var budget: BudgetNotice?
    /// The call's reservation against the daily budgets, for `reserve`, and
    /// for the `usage` of a call that had one (which settles it).
    public var reservation: SpendReservation?

    private enum CodingKeys: String, CodingKey {
        case kind = "type", target, reason, detail, usage, budget, reservation
    }

    public init(_ kind: Kind, target: String? = nil, reason: String? = nil, detail: String? = nil,
                usage: CallUsage? = nil, budget: BudgetNotice? = nil, reservation: SpendReservation? = nil) {
        self.kind = kind
        self.target = target
        self.reason = reason
        self.detail = detail
        self.usage = usage
        self.budget = budget
        self.reservation = reservation
    }

    /// The event on one stdout line of the proxy; nil for a line that is not one.
    public static func decode(line: String) -> EgressEvent? {
        try? JSONDecoder().decode(EgressEvent.self, from: Data(line.utf8))
    }

    /// The job-log line for this event.
    public var logLine: String {
        switch kind {
        case .denied: return "egress denied: \(target ?? "?") (\(detail ?? reason ?? "refused"))"
        case .usage: return "model call: \(detail ?? usage?.route ?? "?"): " + (usage?.summary ?? "no usage")
        case .budget: return budget?.message ?? "budget"
        case .ready, .log, .retry, .allowed, .reserve: return "egress: \(detail ?? kind.rawValue)"
        }
    }

    /// The job event for this line, if it is one (`ready` and `log` are not).
    public func jobEvent(at: Date = Date()) -> JobEvent? {
        switch kind {
        case .allowed: return .egressAllowed(target: target ?? "?", detail: detail, at: at)
        case .denied: return .egressDenied(target: target ?? "?", reason: reason, detail: detail, at: at)
        case .usage: return usage.map { .providerCall($0, at: at) }
        case .budget: return budget.map { .budget(message: $0.message, exceeded: $0.exceeded, at: at) }
        case .retry: return .error(source: "egress-proxy", message: detail ?? "provider call retried", recoverable: true)
        case .ready, .log, .reserve: return nil
        }
    }
}
