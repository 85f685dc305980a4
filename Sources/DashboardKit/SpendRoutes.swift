import Foundation
import Hummingbird
import JobStore
import RunnerCore

extension Dashboard {
    /// The spend view: `/spend` (the page) and `/api/spend` (JSON), both
    /// taking `days` (1–90, default 7).
    func addSpendRoutes(_ router: Router<DashboardContext>) {
        router.get("/spend") { request, context in
            try await self.page(context) { session in
                let days = try Self.spendDays(request)
                let (summary, counters) = try await self.spendData(days: days)
                return Self.html(SpendViews.page(summary, counters: counters, days: days, session: session))
            }
        }
        router.get("/api/spend") { request, _ in
            try await self.api {
                let days = try Self.spendDays(request)
                let (summary, counters) = try await self.spendData(days: days)
                return Self.json(SpendViews.json(summary, counters: counters, days: days))
            }
        }
    }

    /// The `days` parameter: a whole number in 1…90 (7 when absent).
    static func spendDays(_ request: Request) throws -> Int {
        guard let text = try FormData.parse(request.uri.query ?? "")["days"] else { return 7 }
        guard let days = Int(text), (1...90).contains(days) else { throw BadRequest(message: "days must be a whole number from 1 to 90") }
        return days
    }

    func spendData(days: Int) async throws -> (SpendSummary, [JSONValue]) {
        let since = Date().addingTimeInterval(-Double(days) * 86_400)
        async let summary = store.spendSummary(since: since)
        async let counters = store.spendDays(since: DailyBudgetSettings.day(since))
        return (try await summary, try await counters)
    }
}
