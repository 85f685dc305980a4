#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// The metering of one model call on a keyed route: its usage and cost
/// once it ends (`CallUsage`, one `usage` event), the budget's thresholds it
/// crossed (`budget` events), and the refusal of a call once the budget is
/// spent, in the dialect's own error form so that the agent reports it.
struct MeteredCall {
    let route: String
    let dialect: RouteAllowlist.Dialect
    let path: String
    let startedMs: Int64
    let started = ContinuousClock.now

    init(route: String, dialect: RouteAllowlist.Dialect, path: String) {
        self.route = route
        self.dialect = dialect
        self.path = path
        startedMs = Int64(Date().timeIntervalSince1970 * 1000)
    }

    /// The call's record once its answer ended (`reader` finished); `body`
    /// is the request's, read for the model only when the answer names none.
    func usage(_ reader: UsageReader, status: Int, body: [UInt8], meter: Meter, retries: Int = 0) -> CallUsage {
        let model = reader.model ?? Self.requestModel(body) ?? Self.geminiPathModel(path)
        let metered = reader.found && (200..<300).contains(status)
        let (i, o, r, w) = metered ? (reader.input, reader.output, reader.cacheRead, reader.cacheWrite) : (0, 0, 0, 0)
        // A refused call is not billed: its cost is 0 when the model has a price.
        let cost = metered || !(200..<300).contains(status)
            ? meter.cost(model: model, input: i, output: o, cacheRead: r, cacheWrite: w) : nil
        let ms = Int(((ContinuousClock.now - started) / .milliseconds(1)).rounded())
        return CallUsage(atMs: startedMs, route: route, model: model, status: status, inputTokens: i, outputTokens: o,
                         cacheReadTokens: r, cacheWriteTokens: w, cost: cost, durationMs: ms, metered: metered,
                         streamed: reader.streamed, retries: retries)
    }

    /// The request's `model` field.
    static func requestModel(_ body: [UInt8]) -> String? {
        guard !body.isEmpty, body.firstRange(of: Array("\"model\"".utf8)) != nil else { return nil }
        return (try? JSONValue.parse(Data(body)))?["model"]?.stringValue
    }

    /// MODEL of a Gemini path `/VERSION/models/MODEL:action`.
    static func geminiPathModel(_ path: String) -> String? {
        let plain = path.prefix { $0 != "?" }
        guard let range = plain.range(of: "/models/") else { return nil }
        let rest = plain[range.upperBound...]
        return rest.lastIndex(of: ":").map { String(rest[..<$0]) }
    }

    /// The answer to a model call refused because the budget is spent: 402,
    /// in the error form of `dialect` (which the agent's SDK reads and does not retry).
    static func refusal(_ dialect: RouteAllowlist.Dialect, _ notice: BudgetNotice) -> [UInt8] {
        refusal(dialect, status: 402, type: "budget_exceeded",
                message: "agent-runner: " + notice.message + ". Stop and report what was done.")
    }

    /// The price table's model for a call under a dollar budget (the job's,
    /// or a daily one): nil when it may go, else the refusal (400, the
    /// dialect's form) of a model the table does not price, whose cost the
    /// budget could not count.
    static func unpricedRefusal(_ dialect: RouteAllowlist.Dialect, model: String?, meter: Meter) -> (String, [UInt8])? {
        let budgets = [meter.budget.usd?.setting, meter.shared.map { _ in "USER_DAILY_BUDGET_USD/PROJECT_DAILY_BUDGET_USD" }]
            .compactMap { $0 }
        guard !budgets.isEmpty, model.flatMap(meter.prices.price) == nil else { return nil }
        let name = model.map { LogBounds.clip($0, bytes: 128) } ?? "(none named)"
        let why = "model \(name) has no price in the price table, so \(budgets.joined(separator: " and ")) cannot count its cost "
            + "(the operator adds it with MODEL_PRICES_FILE)"
        return (why, refusal(dialect, status: 400, type: "unpriced_model", message: "agent-runner: " + why + ". Use the configured model."))
    }

    /// An error answer in the error form of `dialect`.
    static func refusal(_ dialect: RouteAllowlist.Dialect, status: Int, type: String, message: String) -> [UInt8] {
        let json: JSONValue = switch dialect {
        case .anthropic: ["type": "error", "error": ["type": .string(type), "message": .string(message)]]
        case .openai: ["error": ["message": .string(message), "type": .string(type), "code": .string(type), "param": nil]]
        case .gemini: ["error": ["code": .int(Int64(status)), "status": .string(type.uppercased()), "message": .string(message)]]
        }
        let text = json.jsonString + "\n"
        let reason = status == 402 ? "Payment Required" : "Bad Request"
        return Array(("HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + "Content-Length: \(text.utf8.count)\r\n\r\n" + text).utf8)
    }
}
