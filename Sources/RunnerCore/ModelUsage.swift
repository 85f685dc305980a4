import Foundation

/// One model call as the egress proxy metered it from the provider's answer
/// (docs/budgets.md). Token kinds do not overlap: `inputTokens` are the
/// prompt tokens billed at the input price, without those read from or
/// written to the provider's cache.
public struct CallUsage: Sendable, Codable, Equatable {
    /// When the call started, in milliseconds since 1970.
    public var atMs: Int64
    /// The keyed route: "provider" or "gemini".
    public var route: String
    /// The model the answer names (else the request's); at most `maxModelBytes`.
    public var model: String?
    /// The answer's HTTP status (0: no answer).
    public var status: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var cacheReadTokens: Int
    public var cacheWriteTokens: Int
    /// US dollars by the price table; nil when the model has no price or the
    /// usage was not in the answer (never 0 for unknown).
    public var cost: Double?
    public var durationMs: Int
    /// Whether the answer carried its usage (false: the tokens are not known).
    public var metered: Bool
    /// Whether the answer was a server-sent event stream.
    public var streamed: Bool
    /// How often the proxy tried the call again (a provider's 429, 529 or 5xx, or a cut connection).
    public var retries: Int

    /// The longest model name kept, in UTF-8 bytes (the agent chooses it).
    public static let maxModelBytes = 128

    public init(atMs: Int64, route: String, model: String?, status: Int, inputTokens: Int = 0, outputTokens: Int = 0,
                cacheReadTokens: Int = 0, cacheWriteTokens: Int = 0, cost: Double?, durationMs: Int,
                metered: Bool, streamed: Bool, retries: Int = 0) {
        self.atMs = atMs
        self.route = route
        self.model = model.map { LogBounds.clip($0, bytes: Self.maxModelBytes) }
        self.status = status
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadTokens = cacheReadTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.cost = cost
        self.durationMs = durationMs
        self.metered = metered
        self.streamed = streamed
        self.retries = retries
    }

    /// Every token the call processed (what JOB_BUDGET_TOKENS counts).
    public var tokens: Int {
        inputTokens.addingClamped(outputTokens).addingClamped(cacheReadTokens).addingClamped(cacheWriteTokens)
    }

    /// One line for the job's log.
    public var summary: String {
        var s = "\(model ?? "unknown model") -> \(status == 0 ? "no answer" : String(status))"
        if metered {
            s += ", tokens in \(inputTokens) out \(outputTokens) cache read \(cacheReadTokens) write \(cacheWriteTokens)"
        } else if (200..<300).contains(status) {
            s += ", usage not in the answer"
        }
        s += ", cost " + (cost.map(UsageTotals.dollars) ?? "unknown")
        return s + ", \(durationMs) ms" + (streamed ? ", streamed" : "") + (retries > 0 ? ", \(retries) retries" : "")
    }
}

/// The sum of a job's model calls: `metadata.usage`.
public struct UsageTotals: Sendable, Codable, Equatable {
    public var requests = 0
    public var inputTokens = 0
    public var outputTokens = 0
    public var cacheReadTokens = 0
    public var cacheWriteTokens = 0
    /// The priced calls' cost in US dollars.
    public var pricedCost = 0.0
    /// Calls whose cost is unknown (no price for the model, or no usage in the answer).
    public var unpricedRequests = 0
    /// The proxy's retries of provider faults, over all calls.
    public var retries = 0
    /// Per model (at most `maxModels`; more are summed under `other`).
    public var byModel: [String: ModelTotals] = [:]

    /// The most models listed one by one.
    public static let maxModels = 16

    public init() {}

    /// One model's share.
    public struct ModelTotals: Sendable, Codable, Equatable {
        public var requests = 0
        public var inputTokens = 0
        public var outputTokens = 0
        public var cacheReadTokens = 0
        public var cacheWriteTokens = 0
        public var pricedCost = 0.0
        public var unpricedRequests = 0
        public init() {}

        mutating func add(_ c: CallUsage) {
            requests += 1
            inputTokens = inputTokens.addingClamped(c.inputTokens)
            outputTokens = outputTokens.addingClamped(c.outputTokens)
            cacheReadTokens = cacheReadTokens.addingClamped(c.cacheReadTokens)
            cacheWriteTokens = cacheWriteTokens.addingClamped(c.cacheWriteTokens)
            if let cost = c.cost { pricedCost += cost } else { unpricedRequests += 1 }
        }

        /// The cost, or nil when no call of it was priced.
        public var cost: Double? { unpricedRequests == requests && requests > 0 ? nil : pricedCost }

        var json: JSONValue {
            ["requests": .int(Int64(requests)), "inputTokens": .int(Int64(inputTokens)),
             "outputTokens": .int(Int64(outputTokens)), "cacheReadTokens": .int(Int64(cacheReadTokens)),
             "cacheWriteTokens": .int(Int64(cacheWriteTokens)), "cost": cost.map { .double($0) } ?? .null,
             "unpricedRequests": .int(Int64(unpricedRequests))]
        }
    }

    /// Every token counted (what JOB_BUDGET_TOKENS counts).
    public var tokens: Int {
        inputTokens.addingClamped(outputTokens).addingClamped(cacheReadTokens).addingClamped(cacheWriteTokens)
    }

    /// The cost in US dollars; nil when no call was priced (unknown, never 0).
    /// With `unpricedRequests` > 0 it is a lower bound.
    public var cost: Double? { unpricedRequests == requests && requests > 0 ? nil : pricedCost }

    public mutating func add(_ c: CallUsage) {
        requests += 1
        retries = retries.addingClamped(c.retries)
        inputTokens = inputTokens.addingClamped(c.inputTokens)
        outputTokens = outputTokens.addingClamped(c.outputTokens)
        cacheReadTokens = cacheReadTokens.addingClamped(c.cacheReadTokens)
        cacheWriteTokens = cacheWriteTokens.addingClamped(c.cacheWriteTokens)
        if let cost = c.cost { pricedCost += cost } else { unpricedRequests += 1 }
        var name = c.model ?? "unknown"
        if byModel[name] == nil && byModel.count >= Self.maxModels { name = "other" }
        byModel[name, default: ModelTotals()].add(c)
    }

    /// As stored in `metadata.usage`.
    public var json: JSONValue {
        ["requests": .int(Int64(requests)), "inputTokens": .int(Int64(inputTokens)),
         "outputTokens": .int(Int64(outputTokens)), "cacheReadTokens": .int(Int64(cacheReadTokens)),
         "cacheWriteTokens": .int(Int64(cacheWriteTokens)), "tokens": .int(Int64(tokens)),
         "cost": cost.map { .double($0) } ?? .null, "unpricedRequests": .int(Int64(unpricedRequests)),
         "retries": .int(Int64(retries)), "byModel": .object(byModel.mapValues(\.json))]
    }

    /// One line for the job's log.
    public var summary: String {
        "usage: \(requests) model call(s), tokens in \(inputTokens) out \(outputTokens) cache read \(cacheReadTokens) "
            + "write \(cacheWriteTokens), cost " + (cost.map(Self.dollars) ?? "unknown")
            + (unpricedRequests > 0 && cost != nil ? " (at least; \(unpricedRequests) call(s) unpriced)" : "")
    }

    /// "$1.2345".
    public static func dollars(_ d: Double) -> String { String(format: "$%.4f", d) }

    /// The same in the shape of an agent's own report (`AgentUsage`, format
    /// `egress-proxy`), for a pull request's body: the model when there was
    /// one, `iterations` the calls.
    public var agentUsage: AgentUsage {
        var a = AgentUsage()
        a.format = "egress-proxy"
        a.model = byModel.count == 1 ? byModel.keys.first : nil
        a.inputTokens = inputTokens
        a.outputTokens = outputTokens
        a.cacheReadTokens = cacheReadTokens
        a.cacheWriteTokens = cacheWriteTokens
        a.cost = cost
        a.iterations = requests
        return a
    }
}

extension Int {
    /// The sum, staying at `Int.max` instead of overflowing.
    public func addingClamped(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? Int.max : sum
    }
}
