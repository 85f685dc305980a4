import Foundation
import RunnerCore

/// The most one model call can cost (its bound), known before it starts:
/// its input priced from the request's size in bytes (a token is never less
/// than a byte of the request), its output from the request's own output
/// limit (`max_tokens` and its kin) times the choices it asks for. Under a
/// budget, a request without an output limit gets one, so that its bound is
/// finite (docs/budgets.md, "Daily budgets").
enum CallBound {
    /// The most output tokens an injected limit asks for: one every current
    /// model of the shipped price table accepts.
    static let injectedCap = 8192

    /// The request's output limit, by its dialect's fields (the largest when
    /// it names several); nil when it has none.
    static func outputLimit(_ shape: UsageReader.Shape, _ json: JSONValue) -> Int? {
        let fields: [JSONValue?] = switch shape {
        case .anthropic: [json["max_tokens"]]
        case .chat: [json["max_tokens"], json["max_completion_tokens"]]
        case .responses: [json["max_output_tokens"]]
        case .gemini: [json["generationConfig"]?["maxOutputTokens"]]
        }
        let values = fields.compactMap { $0?.numberValue }.filter { $0.isFinite && $0 >= 0 }
        return values.max().map { Int(min($0, 1e12)) }
    }

    /// How many answers the request asks for (`n`, Gemini's `candidateCount`): each is billed.
    static func choices(_ shape: UsageReader.Shape, _ json: JSONValue) -> Int {
        let n: Double? = switch shape {
        case .chat: json["n"]?.numberValue
        case .gemini: json["generationConfig"]?["candidateCount"]?.numberValue
        case .anthropic, .responses: nil
        }
        guard let n, n.isFinite else { return 1 }
        return Int(max(1, min(n, 1e6)))
    }

    /// The field an injected output limit goes in: `max_completion_tokens`
    /// for OpenAI's own chat completions (its reasoning models refuse
    /// `max_tokens`), `max_tokens` for other chat completions and the legacy
    /// completions.
    static func injected(_ shape: UsageReader.Shape, path: String, openAI: Bool, tokens: Int, into json: [String: JSONValue])
        -> [String: JSONValue] {
        var object = json
        switch shape {
        case .anthropic: object["max_tokens"] = .int(Int64(tokens))
        case .chat:
            let plain = path.prefix { $0 != "?" }
            let field = openAI && plain.hasSuffix("/chat/completions") ? "max_completion_tokens" : "max_tokens"
            object[field] = .int(Int64(tokens))
        case .responses: object["max_output_tokens"] = .int(Int64(tokens))
        case .gemini:
            var config = object["generationConfig"]?.objectValue ?? [:]
            config["maxOutputTokens"] = .int(Int64(tokens))
            object["generationConfig"] = .object(config)
        }
        return object
    }

    /// The dollars of `bytes` of input and `output` tokens for each of
    /// `choices` answers at `price` (input at the dearest of the input kinds).
    static func usd(bytes: Int, output: Int, choices: Int, price: ModelPrice) -> Double {
        let input = max(price.input, price.cacheRead, price.cacheWrite)
        return (Double(bytes) * input + Double(output) * Double(choices) * price.output) / 1e6
    }

    /// The output limit a request without one gets: what the remaining
    /// budget buys at the model's output price (`remainingUSD`), at most
    /// `remainingTokens` and `injectedCap`, at least 1.
    static func injectedTokens(remainingUSD: Double?, remainingTokens: Double?, price: ModelPrice?) -> Int {
        var cap = Double(injectedCap)
        if let remainingUSD, let price, price.output > 0 { cap = min(cap, remainingUSD / price.output * 1e6) }
        if let remainingTokens { cap = min(cap, remainingTokens) }
        return cap.isFinite ? Int(max(1, cap.rounded(.down))) : 1
    }

    /// Prepares one model call under a budget: the body to send (with an
    /// output limit injected when it has none) and the call's bound in
    /// dollars (nil when the model has no price). `remaining` is what is left
    /// of the budgets in dollars and tokens (nil: no such limit).
    static func prepare(_ body: [UInt8], shape: UsageReader.Shape, path: String, openAI: Bool, price: ModelPrice?,
                        remainingUSD: Double?, remainingTokens: Double?) -> (body: [UInt8], bound: Double?, injected: Int?) {
        guard let json = try? JSONValue.parse(Data(body)), let object = json.objectValue else {
            // Not a JSON object: the provider refuses it; its bound assumes the most an injected limit would ask.
            return (body, price.map { usd(bytes: body.count, output: injectedCap, choices: 1, price: $0) }, nil)
        }
        let choices = choices(shape, json)
        if let limit = outputLimit(shape, json) {
            return (body, price.map { usd(bytes: body.count, output: limit, choices: choices, price: $0) }, nil)
        }
        let tokens = injectedTokens(remainingUSD: remainingUSD, remainingTokens: remainingTokens, price: price)
        let sent = Array(JSONValue.object(injected(shape, path: path, openAI: openAI, tokens: tokens, into: object)).jsonString.utf8)
        return (sent, price.map { usd(bytes: sent.count, output: tokens, choices: choices, price: $0) }, tokens)
    }
}
