import Foundation

/// A model's list prices in US dollars per million tokens.
public struct ModelPrice: Sendable, Codable, Equatable {
    public var input: Double
    public var output: Double
    public var cacheRead: Double
    public var cacheWrite: Double

    public init(input: Double, output: Double, cacheRead: Double, cacheWrite: Double) {
        self.input = input
        self.output = output
        self.cacheRead = cacheRead
        self.cacheWrite = cacheWrite
    }

    /// The cost of a call's tokens.
    public func cost(input i: Int, output o: Int, cacheRead r: Int, cacheWrite w: Int) -> Double {
        (Double(i) * input + Double(o) * output + Double(r) * cacheRead + Double(w) * cacheWrite) / 1_000_000
    }
}

/// The prices the egress proxy meters with (docs/budgets.md): the table
/// shipped here, overridden or extended by MODEL_PRICES_FILE. A model is
/// found by its exact name, else without a `provider/` or `models/` prefix,
/// else by the longest listed name it starts with followed by `-`, `@` or
/// `:` (a dated or tagged version: `claude-sonnet-4-5-20250929`). A model
/// not found has no price: its calls are metered in tokens, their cost is unknown.
public struct PriceTable: Sendable, Codable, Equatable {
    /// When the prices were taken (a date, as the file says it).
    public var takenOn: String
    public var models: [String: ModelPrice]

    public init(takenOn: String, models: [String: ModelPrice]) {
        self.takenOn = takenOn
        self.models = models
    }

    /// The price of `model`, or nil. A name whose version is dotted, as
    /// OpenRouter writes them (`anthropic/claude-sonnet-4.5`), is also looked
    /// up dashed, as the providers write them.
    public func price(_ model: String) -> ModelPrice? {
        if let p = exactPrice(model) { return p }
        return model.contains(".") ? exactPrice(model.replacingOccurrences(of: ".", with: "-")) : nil
    }

    private func exactPrice(_ model: String) -> ModelPrice? {
        let lower = model.lowercased()
        if let p = models[lower] { return p }
        var name = lower
        if name.hasPrefix("models/") { name.removeFirst("models/".count) }
        if let slash = name.lastIndex(of: "/") { name = String(name[name.index(after: slash)...]) }
        if let p = models[name] { return p }
        let best = models.keys.filter { key in
            name.hasPrefix(key) && ["-", "@", ":"].contains(name.dropFirst(key.count).first.map(String.init) ?? "")
        }.max { $0.count < $1.count }
        return best.flatMap { models[$0] }
    }

    /// This table with `other`'s models added or replacing, and its date.
    public func overridden(by other: PriceTable) -> PriceTable {
        PriceTable(takenOn: other.takenOn, models: models.merging(other.models) { $1 })
    }

    /// The shipped table with MODEL_PRICES_FILE's models: `{"takenOn": "…",
    /// "models": {"name": {"input": …, "output": …, "cacheRead": …,
    /// "cacheWrite": …}}}`, dollars per million tokens, finite and not
    /// negative; `cacheRead` and `cacheWrite` default to `input`.
    public static func loading(file path: String) throws -> PriceTable {
        let variable = "MODEL_PRICES_FILE"
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else {
            throw ConfigurationError(variable, "cannot read \(path) (or it is over 1 MiB)")
        }
        guard let doc = try? JSONValue.parse(data), let models = doc["models"]?.objectValue else {
            throw ConfigurationError(variable, "\(path) is not JSON with a \"models\" object")
        }
        var table: [String: ModelPrice] = [:]
        for (name, entry) in models {
            func number(_ key: String, default fallback: Double? = nil) throws -> Double {
                let value: Double? = switch entry[key] {
                case .int(let i)?: Double(i)
                case .double(let d)?: d
                case nil, .null?: fallback
                default: nil
                }
                guard let value, value.isFinite, value >= 0 else {
                    throw ConfigurationError(variable, "\(path): models.\(name).\(key) must be a number ≥ 0 (dollars per million tokens)")
                }
                return value
            }
            guard !name.isEmpty, name.utf8.count <= CallUsage.maxModelBytes else {
                throw ConfigurationError(variable, "\(path): a model name must be 1-\(CallUsage.maxModelBytes) bytes")
            }
            let input = try number("input")
            table[name.lowercased()] = ModelPrice(input: input, output: try number("output"),
                                                  cacheRead: try number("cacheRead", default: input),
                                                  cacheWrite: try number("cacheWrite", default: input))
        }
        return shipped.overridden(by: PriceTable(takenOn: doc["takenOn"]?.stringValue ?? "MODEL_PRICES_FILE", models: table))
    }

    /// The providers' published list prices (standard tier, prompts up to
    /// 200k tokens where a price is tiered; Anthropic's cache write is the
    /// 5-minute one; OpenAI bills no cache write, so it is the input price).
    public static let shipped = PriceTable(takenOn: "2025-11-01", models: [
        // Anthropic
        "claude-opus-4-5": ModelPrice(input: 5, output: 25, cacheRead: 0.5, cacheWrite: 6.25),
        "claude-opus-4-1": ModelPrice(input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75),
        "claude-opus-4": ModelPrice(input: 15, output: 75, cacheRead: 1.5, cacheWrite: 18.75),
        "claude-sonnet-4-5": ModelPrice(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
        "claude-sonnet-4": ModelPrice(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
        "claude-3-7-sonnet": ModelPrice(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
        "claude-3-5-sonnet": ModelPrice(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75),
        "claude-haiku-4-5": ModelPrice(input: 1, output: 5, cacheRead: 0.1, cacheWrite: 1.25),
        "claude-3-5-haiku": ModelPrice(input: 0.8, output: 4, cacheRead: 0.08, cacheWrite: 1),
        "claude-3-haiku": ModelPrice(input: 0.25, output: 1.25, cacheRead: 0.03, cacheWrite: 0.3),
        // OpenAI
        "gpt-5": ModelPrice(input: 1.25, output: 10, cacheRead: 0.125, cacheWrite: 1.25),
        "gpt-5-mini": ModelPrice(input: 0.25, output: 2, cacheRead: 0.025, cacheWrite: 0.25),
        "gpt-5-nano": ModelPrice(input: 0.05, output: 0.4, cacheRead: 0.005, cacheWrite: 0.05),
        "gpt-4.1": ModelPrice(input: 2, output: 8, cacheRead: 0.5, cacheWrite: 2),
        "gpt-4.1-mini": ModelPrice(input: 0.4, output: 1.6, cacheRead: 0.1, cacheWrite: 0.4),
        "gpt-4.1-nano": ModelPrice(input: 0.1, output: 0.4, cacheRead: 0.025, cacheWrite: 0.1),
        "gpt-4o": ModelPrice(input: 2.5, output: 10, cacheRead: 1.25, cacheWrite: 2.5),
        "gpt-4o-mini": ModelPrice(input: 0.15, output: 0.6, cacheRead: 0.075, cacheWrite: 0.15),
        "o3": ModelPrice(input: 2, output: 8, cacheRead: 0.5, cacheWrite: 2),
        "o4-mini": ModelPrice(input: 1.1, output: 4.4, cacheRead: 0.275, cacheWrite: 1.1),
        "o3-mini": ModelPrice(input: 1.1, output: 4.4, cacheRead: 0.55, cacheWrite: 1.1),
        // Google Gemini
        "gemini-2.5-pro": ModelPrice(input: 1.25, output: 10, cacheRead: 0.125, cacheWrite: 1.25),
        "gemini-2.5-flash": ModelPrice(input: 0.3, output: 2.5, cacheRead: 0.03, cacheWrite: 0.3),
        "gemini-2.5-flash-lite": ModelPrice(input: 0.1, output: 0.4, cacheRead: 0.01, cacheWrite: 0.1),
        "gemini-2.0-flash": ModelPrice(input: 0.1, output: 0.4, cacheRead: 0.025, cacheWrite: 0.1),
        "gemini-2.0-flash-lite": ModelPrice(input: 0.075, output: 0.3, cacheRead: 0.075, cacheWrite: 0.075),
    ])
}
