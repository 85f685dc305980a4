#if canImport(Glibc)
import Glibc
#endif
import ChildEgressProxy
import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// The model providers are reached by the egress proxy itself (its keyed
/// `/provider/…` and `/gemini/…` routes, over libcurl), never by the agent:
/// a job's proxy ticket opens no CONNECT to the Cline provider's host nor to
/// the Gemini API, so an agent cannot call them with a key of its own. Only
/// the git remote (by name) and JOB_EGRESS_ALLOW open a destination.
@Suite(.serialized) struct ProviderEgressTests {
    /// A job's proxy ticket, made as the supervisor makes it.
    func ticket(_ env: [String: String], repoURL: String?, workspace: String = "/nonexistent/workspace",
                geminiRouteToken: String? = nil) throws -> EgressProxyTicket {
        let config = try RunnerConfiguration(environment: Harness.minimalConfig.merging(env) { $1 })
        return JobLaunch(config: config, childPath: "/nonexistent/agent-runner-job")
            .proxyTicket(workspace: workspace, repoURL: repoURL, geminiRouteToken: geminiRouteToken)
    }

    /// Decided with a stand-in resolver: no lookup, no connection.
    @Test func aCONNECTToTheProviderHostsIsRefusedWhileTheRemoteIsAllowed() throws {
        let env = ["GENERATORS": "cline,gemini,scaffold", "CLINE_ENABLED": "true", "CLINE_PROVIDER": "anthropic",
                   "CLINE_API_KEY": ContainmentTests.realKey, "GOOGLE_GEMINI_API_KEY": GeminiTests.key]
        let t = try ticket(env, repoURL: "https://github.com/acme/shop.git", geminiRouteToken: GeminiRoute.newToken())
        // The routes are configured: the proxy holds the provider, its key and the Gemini upstream.
        #expect(t.provider?.upstreamBaseURL == "https://api.anthropic.com" && t.providerKey == ContainmentTests.realKey)
        #expect(t.gemini?.apiBase.contains("generativelanguage.googleapis.com") == true)
        let dns: (String, Int) -> [IPAddress] = { host, _ in
            ["api.anthropic.com": ["203.0.113.10"], "generativelanguage.googleapis.com": ["203.0.113.11"],
             "github.com": ["203.0.113.12"]][host, default: []].compactMap(IPAddress.init(literal:))
        }
        let policy = EgressPolicy(rules: t.rules)
        for host in ["api.anthropic.com", "generativelanguage.googleapis.com"] {
            #expect(policy.decide(host: host, port: 443, tunnel: true, resolve: dns) == .deny(.notAllowed, "not in JOB_EGRESS_ALLOW"),
                    "\(host): \(t.rules)")
        }
        #expect(policy.decide(host: "github.com", port: 443, tunnel: true, resolve: dns) == .allow([IPAddress(literal: "203.0.113.12")!]))
        // An operator may still open a provider host on purpose.
        let opened = try ticket(env.merging(["JOB_EGRESS_ALLOW": "api.anthropic.com"]) { $1 }, repoURL: nil)
        #expect(EgressPolicy(rules: opened.rules).decide(host: "api.anthropic.com", port: 443, tunnel: true, resolve: dns)
                == .allow([IPAddress(literal: "203.0.113.10")!]))
    }

    /// The real proxy server on a loopback provider (an exact `127.0.0.1:port`
    /// base URL, which the old derived rule opened to CONNECT): the agent's
    /// CONNECT there is refused and nothing reaches the provider, while the
    /// `/provider/…` route still reaches it with the real key.
    @Test func theProviderRouteWorksButACONNECTToItsHostIsRefused() async throws {
        let dir = TestEnv.tempDir("provider-egress")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = dir + "/provider.jsonl"
        let provider = try await FixtureServer("fake_provider.py", ["ok", log])
        defer { provider.stop() }
        try FileManager.default.createDirectory(atPath: dir + "/run", withIntermediateDirectories: true)
        let t = try ticket(["GENERATORS": "cline,scaffold", "CLINE_ENABLED": "true",
                            "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_API_KEY": ContainmentTests.realKey],
                           repoURL: "https://github.com/acme/shop.git", workspace: dir)
        let proxy = try InProcessProxy(t, eventsPath: dir + "/events.jsonl")
        defer { proxy.stop() }
        func exchange(_ request: String) async throws -> String { try await proxy.exchange(request) }
        let target = "127.0.0.1:\(provider.port)"
        let connect = try await exchange("CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n\r\n")
        #expect(connect.hasPrefix("HTTP/1.1 403"), "\(connect)")
        #expect(connect.contains("egress denied: \(target) (not in JOB_EGRESS_ALLOW)"), "\(connect)")
        // An absolute-URI request to the provider's host, with the agent's own key, likewise.
        let plain = try await exchange("GET http://\(target)/v1/models HTTP/1.1\r\nHost: \(target)\r\n"
            + "Authorization: Bearer sk-the-agents-own-key\r\nConnection: close\r\n\r\n")
        #expect(plain.hasPrefix("HTTP/1.1 403"), "\(plain)")
        #expect(try FixtureServer.jsonLines(log).isEmpty, "a refused request never reaches the provider")
        let denied = proxy.eventLog().filter { $0.kind == .denied }
        #expect(denied.contains { $0.reason == "not_allowed" && $0.target == target }, "\(denied)")
        // The route: the placeholder key is swapped for the real one.
        let routed = try await exchange("GET /provider/models HTTP/1.1\r\nHost: x\r\n"
            + "Authorization: Bearer \(ClineProvider.placeholderKey)\r\nConnection: close\r\n\r\n")
        #expect(routed.hasPrefix("HTTP/1.1 200"), "\(routed)")
        let seen = try FixtureServer.jsonLines(log)
        #expect(seen.count == 1 && seen.first?["path"]?.stringValue == "/v1/models", "\(seen)")
        // Every header line the provider got (duplicates included): the real key once, the placeholder nowhere.
        #expect(seen.first?.headerValues("authorization") == ["Bearer " + ContainmentTests.realKey], "\(seen)")
        #expect(seen.first?.allHeaderValues.contains { $0.contains(ClineProvider.placeholderKey) } == false, "\(seen)")
    }
}
