import Foundation
import Hummingbird
import JobStore
import Logging
import RunnerCore
import ServiceLifecycle

/// Per-request state: who is signed in.
public struct DashboardContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The cookie session, when the request carries a live one.
    var session: Session?
    /// True for API requests authorised by `Authorization: Bearer DASHBOARD_TOKEN` (no cookie, no CSRF).
    var bearer = false
    public init(source: Source) { coreContext = .init(source: source) }
}

/// The dashboard: its dependencies and its HTTP application.
public final class Dashboard: Sendable {
    static let sessionCookie = "ar_session"
    static let signInCookie = "ar_signin"

    let store: JobStore
    let token: String
    let sessions: SessionStore
    let hub: ChangeHub
    let leaseSeconds: Int
    let logger: Logger
    /// JOB_BUDGET_* (the job page's budget bars: the operator's, lowered by the job's own `budget`).
    let spend: SpendSettings

    /// - Parameters:
    ///   - token: DASHBOARD_TOKEN, compared in constant time and never logged.
    ///   - pollSeconds: how often live views re-read while the change stream is down.
    public init(store: JobStore, token: String, leaseSeconds: Int, pollSeconds: Double, logger: Logger,
                sessions: SessionStore = SessionStore(), spend: SpendSettings = SpendSettings()) {
        self.store = store
        self.spend = spend
        self.token = token
        self.sessions = sessions
        self.leaseSeconds = leaseSeconds
        self.logger = logger
        hub = ChangeHub(pool: store.pool, pollInterval: .milliseconds(Int(max(0.2, pollSeconds) * 1000)), logger: logger)
    }

    /// The router with every page, API route and asset.
    public func router() -> Router<DashboardContext> {
        let router = Router(context: DashboardContext.self)
        router.add(middleware: AuthMiddleware(dashboard: self))
        addPageRoutes(router)
        addAPIRoutes(router)
        addEventRoutes(router)
        addSpendRoutes(router)
        router.get("/assets/app.css") { _, _ in Self.asset(Assets.css, type: "text/css; charset=utf-8") }
        router.get("/assets/app.js") { _, _ in Self.asset(Assets.js, type: "text/javascript; charset=utf-8") }
        router.get("/assets/timeline.css") { _, _ in Self.asset(TimelineAssets.css, type: "text/css; charset=utf-8") }
        router.get("/assets/timeline.js") { _, _ in Self.asset(TimelineAssets.js, type: "text/javascript; charset=utf-8") }
        router.get("/healthz") { _, _ in Self.text("ok\n") }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        return router
    }

    /// Serves on `host:port` until SIGTERM or SIGINT; `onListening` gets the bound port (for port 0).
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        // Graceful shutdown runs in reverse order: first the live views end
        // (their streams would keep the server waiting), then the server.
        let group = ServiceGroup(configuration: .init(
            services: [app, LiveViewCloser(hub: hub)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    // MARK: responses

    static func asset(_ text: String, type: String) -> Response {
        var r = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: text)))
        r.headers[.contentType] = type
        r.headers[.cacheControl] = "public, max-age=300"
        return r
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        var r = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: text)))
        r.headers[.contentType] = "text/plain; charset=utf-8"
        return r
    }

    static func html(_ page: HTML, status: HTTPResponse.Status = .ok) -> Response {
        var r = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: page.html)))
        r.headers[.contentType] = "text/html; charset=utf-8"
        return r
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var r = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: value.jsonString + "\n")))
        r.headers[.contentType] = "application/json; charset=utf-8"
        return r
    }

    static func jsonError(_ message: String, status: HTTPResponse.Status) -> Response {
        json(["error": .string(message)], status: status)
    }

    static func redirect(_ location: String) -> Response {
        var r = Response(status: .seeOther)
        r.headers[.location] = location
        return r
    }

    /// A Server-Sent Events response whose body `produce` writes.
    static func eventStream(_ produce: @escaping @Sendable (@Sendable (String) async throws -> Void) async throws -> Void)
        -> Response {
        var r = Response(status: .ok, body: ResponseBody { writer in
            let w = WriterBox(writer)
            try await w.write(": stream open\nretry: 2000\n\n")
            try await produce { try await w.write($0) }
            try await w.finish()
        })
        r.headers[.contentType] = "text/event-stream; charset=utf-8"
        r.headers[.cacheControl] = "no-store"
        r.headers[HeaderName("X-Accel-Buffering")!] = "no"
        return r
    }

    /// Reads the request body as a form (64 KiB at most).
    static func form(_ request: inout Request) async throws -> [String: String] {
        let buffer = try await request.collectBody(upTo: 65536)
        return try FormData.parse(String(buffer: buffer))
    }
}

/// Lets the SSE producer write through the body writer from a `@Sendable` closure.
final class WriterBox: @unchecked Sendable {
    private var writer: any ResponseBodyWriter
    init(_ writer: any ResponseBodyWriter) { self.writer = writer }
    func write(_ text: String) async throws { try await writer.write(ByteBuffer(string: text)) }
    func finish() async throws { try await writer.finish(nil) }
}

/// Sign-in for everything but the sign-in page, the assets and /healthz;
/// a CSRF check on every state-changing request of a cookie session; the
/// security headers on every response.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = DashboardContext
    let dashboard: Dashboard

    static let publicPaths: Set<String> = ["/signin", "/assets/app.css", "/assets/app.js", "/assets/timeline.css",
                                           "/assets/timeline.js", "/healthz", "/favicon.ico"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await authorise(request, context: context, next: next)
        let h = Self.securityHeaders
        for (name, value) in h { response.headers[name] = value }
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }

    static let securityHeaders: [(HeaderName, String)] = [
        (HeaderName("Content-Security-Policy")!,
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        (HeaderName("X-Content-Type-Options")!, "nosniff"),
        (HeaderName("X-Frame-Options")!, "DENY"),
        (HeaderName("Referrer-Policy")!, "no-referrer"),
    ]

    private func authorise(_ request: Request, context: Context,
                           next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if Self.publicPaths.contains(path) { return try await next(request, context) }
        var context = context
        let isAPI = path.hasPrefix("/api/")
        if let session = dashboard.sessions.session(request.cookies[Dashboard.sessionCookie]?.value) {
            context.session = session
        } else if isAPI, let auth = request.headers[.authorization], auth.hasPrefix("Bearer "),
                  ConstantTime.equals(auth.dropFirst(7), dashboard.token) {
            context.bearer = true
        } else if isAPI {
            var r = Dashboard.jsonError("sign in first: a session cookie or Authorization: Bearer is required",
                                        status: .unauthorized)
            r.headers[.wwwAuthenticate] = "Bearer"
            return r
        } else if request.method == .get || request.method == .head {
            var c = URLComponents()
            c.path = "/signin"
            c.queryItems = [URLQueryItem(name: "next", value: request.uri.string)]
            return Dashboard.redirect(c.string ?? "/signin")
        } else {
            return Dashboard.html(Layout.error("Sign in first", "Your session has ended; sign in again.", session: nil),
                                  status: .unauthorized)
        }
        guard let session = context.session, ![.get, .head, .options].contains(request.method) else {
            return try await next(request, context)
        }
        // A cookie session changes state only with its CSRF token (header or form field).
        var request = request
        var presented = request.headers[HeaderName("X-CSRF-Token")!]
        if presented == nil, request.headers[.contentType]?.hasPrefix("application/x-www-form-urlencoded") == true {
            presented = try? await Dashboard.form(&request)["csrf"]
        }
        guard let presented, ConstantTime.equals(presented, session.csrf) else {
            dashboard.logger.warning("request refused: missing or wrong CSRF token", metadata: ["path": "\(path)"])
            return isAPI ? Dashboard.jsonError("missing or wrong CSRF token", status: .forbidden)
                : Dashboard.html(Layout.error("Refused", "The form had expired or did not come from this dashboard. "
                                                + "Reload the page and try again.", session: session), status: .forbidden)
        }
        return try await next(request, context)
    }
}

/// A header name (HTTPTypes' `HTTPField.Name`, reached through Hummingbird's exports).
typealias HeaderName = HTTPFields.Element.Name
