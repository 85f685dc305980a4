#if canImport(Glibc)
import Glibc
#endif
@testable import ChildEgressProxy
import Foundation
import RunnerCore
@testable import SupervisorKit
import Testing

/// The keyed routes carry model calls only: the operator's key opens the
/// whole account (files, batches, fine-tunes, cached contents), so a request
/// that is not a generation, its streaming form, a token count or the model
/// listing is a 403 and an `egress denied` event, and never reaches the
/// upstream; and only allowlisted headers of the agent's go with the key,
/// while organisation, project and beta headers come from CLINE_PROVIDER_HEADERS.
/// The real proxy server runs in-process; the upstream is fake_provider.py,
/// which records every request line and header.
@Suite(.serialized) struct ProviderAllowlistTests {
    static let key = "sk-allowlist-real-key-0123456789"

    /// A proxy whose provider route goes to fake_provider.py as `kind`, under `basePath`.
    final class Rig: @unchecked Sendable {
        let dir: String, log: String
        let provider: FixtureServer
        let proxy: InProcessProxy

        init(_ kind: ClineProvider.Kind, basePath: String = "", headers: [ProviderHeader] = [],
             gemini: Bool = false) async throws {
            dir = TestEnv.tempDir("provider-allowlist")
            log = dir + "/provider.jsonl"
            provider = try await FixtureServer("fake_provider.py", ["ok", log])
            let base = "http://127.0.0.1:\(provider.port)"
            let ticket = EgressProxyTicket(socketPath: dir + "/egress.sock", rules: [],
                                           provider: ClineProvider(kind: kind, upstreamBaseURL: base + basePath),
                                           providerKey: ProviderAllowlistTests.key, providerHeaders: headers,
                                           gemini: gemini ? GeminiUpstream(apiBase: base, apiKey: "AIza-gemini-route-key",
                                                                           routeToken: "route-token") : nil)
            proxy = try InProcessProxy(ticket, eventsPath: dir + "/events.jsonl")
        }

        func stop() {
            proxy.stop()
            provider.stop()
            try? FileManager.default.removeItem(atPath: dir)
        }

        /// `method path` with a small JSON body for POST, and `extra` header lines.
        func send(_ method: String, _ path: String, extra: String = "") async throws -> String {
            let body = method == "POST" ? "{\"model\":\"m1\"}" : ""
            return try await proxy.exchange("\(method) \(path) HTTP/1.1\r\nHost: x\r\n\(extra)"
                + (body.isEmpty ? "" : "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n")
                + "Connection: close\r\n\r\n" + body)
        }

        func requests() throws -> [JSONValue] { try FixtureServer.jsonLines(log) }
    }

    /// What the agent tried in the attack (`GET /v1/files`, `DELETE
    /// /v1/files/…`, `POST /v1/batches`, `POST /v1/fine_tuning/jobs`, the
    /// stored chat completions), each a 403 with a `denied` event; the
    /// model calls of the OpenAI SDKs (Cline, aider through litellm,
    /// mini-swe-agent) still go through, with or without a leading `/v1`.
    @Test func theOpenAIRouteForwardsModelCallsOnly() async throws {
        let rig = try await Rig(.openaiCompatible, basePath: "/v1")
        defer { rig.stop() }
        let refused = [("GET", "/provider/files"), ("DELETE", "/provider/files/file-abc"), ("POST", "/provider/batches"),
                       ("POST", "/provider/fine_tuning/jobs"), ("GET", "/provider/chat/completions"),
                       ("GET", "/provider/v1/files?purpose=batch"), ("POST", "/provider/uploads"), ("GET", "/provider/responses/resp_1"),
                       ("DELETE", "/provider/models/ft:gpt-4o:acme:1"), ("POST", "/provider//chat/completions"),
                       ("POST", "/provider"), ("PUT", "/provider/chat/completions")]
        for (method, path) in refused {
            let answer = try await rig.send(method, path)
            #expect(answer.hasPrefix("HTTP/1.1 403"), "\(method) \(path): \(answer)")
            #expect(answer.contains("\"EGRESS_PROXY\"") && answer.contains("is not a model call"), "\(answer)")
        }
        let reached = try rig.requests()
        #expect(reached.isEmpty, "the key reached the provider: \(reached)")
        let denied = rig.proxy.eventLog().filter { $0.kind == .denied && $0.reason == "not_a_model_call" }
        #expect(denied.count == refused.count, "\(rig.proxy.eventLog())")
        #expect(denied.first?.logLine.hasPrefix("egress denied: GET /provider/files") == true, "\(denied)")
        let allowed = [("POST", "/provider/chat/completions"), ("POST", "/provider/responses"), ("GET", "/provider/models"),
                       ("POST", "/provider/v1/chat/completions"), ("GET", "/provider/models/anthropic/claude-sonnet-4")]
        for (method, path) in allowed {
            let answer = try await rig.send(method, path)
            #expect(!answer.hasPrefix("HTTP/1.1 403"), "\(method) \(path): \(answer)")
        }
        #expect(try rig.requests().map { $0["path"]?.stringValue ?? "" }
                == ["/v1/chat/completions", "/v1/responses", "/v1/models", "/v1/v1/chat/completions",
                    "/v1/models/anthropic/claude-sonnet-4"])
    }

    /// Anthropic: messages, token counting and the model listing under
    /// `/v1`; the Message Batches and Files APIs are refused.
    @Test func theAnthropicRouteForwardsModelCallsOnly() async throws {
        let rig = try await Rig(.anthropic)
        defer { rig.stop() }
        for (method, path) in [("POST", "/provider/v1/messages/batches"), ("GET", "/provider/v1/files"),
                               ("GET", "/provider/v1/messages/batches/msgbatch_1/results"), ("POST", "/provider/messages"),
                               ("GET", "/provider/v1/organizations/me")] {
            let answer = try await rig.send(method, path)
            #expect(answer.hasPrefix("HTTP/1.1 403"), "\(method) \(path): \(answer)")
        }
        #expect(try rig.requests().isEmpty)
        for (method, path) in [("POST", "/provider/v1/messages?beta=true"), ("POST", "/provider/v1/messages/count_tokens"),
                               ("GET", "/provider/v1/models")] {
            _ = try await rig.send(method, path)
        }
        #expect(try rig.requests().map { $0["path"]?.stringValue ?? "" }
                == ["/v1/messages", "/v1/messages/count_tokens", "/v1/models"])
    }

    /// Gemini, on the Cline provider route and on the job child's Gemini
    /// route alike: generateContent, its streaming form, countTokens and the
    /// model listing; files, cached contents, tuned models and batches are refused.
    @Test func theGeminiRoutesForwardModelCallsOnly() async throws {
        let rig = try await Rig(.gemini, gemini: true)
        defer { rig.stop() }
        let token = "X-Agent-Runner-Route: route-token\r\n"
        for prefix in ["/provider", "/gemini"] {
            for (method, path) in [("GET", "/v1beta/files"), ("DELETE", "/v1beta/files/abc"), ("GET", "/v1beta/cachedContents"),
                                   ("POST", "/v1beta/cachedContents"), ("POST", "/v1beta/models/m:batchGenerateContent"),
                                   ("GET", "/v1beta/tunedModels"), ("POST", "/v1beta/models/m:embedContent"),
                                   ("GET", "/v1beta/models/m:generateContent"), ("GET", "/v1beta/batches")] {
                let answer = try await rig.send(method, prefix + path, extra: token)
                #expect(answer.hasPrefix("HTTP/1.1 403"), "\(method) \(prefix)\(path): \(answer)")
            }
        }
        #expect(try rig.requests().isEmpty)
        for prefix in ["/provider", "/gemini"] {
            for (method, path) in [("POST", "/v1beta/models/m:generateContent"), ("POST", "/v1beta/models/m:streamGenerateContent?alt=sse"),
                                   ("POST", "/v1beta/models/m:countTokens"), ("GET", "/v1beta/models"), ("GET", "/v1/models/m")] {
                _ = try await rig.send(method, prefix + path, extra: token)
            }
        }
        let paths = try rig.requests().map { $0["path"]?.stringValue ?? "" }
        let one = ["/v1beta/models/m:generateContent", "/v1beta/models/m:streamGenerateContent", "/v1beta/models/m:countTokens",
                   "/v1beta/models", "/v1/models/m"]
        #expect(paths == one + one, "\(paths)")
    }

    /// The agent's organisation, project, beta and other headers are
    /// dropped; the operator's CLINE_PROVIDER_HEADERS go instead, once; the
    /// allowlisted ones (type, accept, user agent, API version) pass.
    @Test func onlyAllowlistedHeadersGoWithTheKey() async throws {
        let rig = try await Rig(.openai, headers: [ProviderHeader(name: "OpenAI-Organization", value: "org-operator"),
                                                   ProviderHeader(name: "anthropic-beta", value: "operator-beta")])
        defer { rig.stop() }
        let agent = "OpenAI-Organization: org-agent\r\nOpenAI-Project: proj-agent\r\nanthropic-beta: agent-beta\r\n"
            + "OpenAI-Beta: assistants=v2\r\nX-Stainless-Lang: python\r\nCookie: a=b\r\nX-Forwarded-For: 10.0.0.1\r\n"
            + "User-Agent: OpenAI/Python 1.50.0\r\nAccept: application/json\r\nanthropic-version: 2023-06-01\r\n"
            + "x-goog-api-client: genai-js/1.0\r\nAuthorization: Bearer \(ClineProvider.placeholderKey)\r\n"
        let answer = try await rig.send("POST", "/provider/chat/completions", extra: agent)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer)")
        let seen = try #require(try rig.requests().first)
        #expect(seen.headerValues("openai-organization") == ["org-operator"], "\(seen)")
        #expect(seen.headerValues("anthropic-beta") == ["operator-beta"], "\(seen)")
        #expect(seen.headerValues("authorization") == ["Bearer " + Self.key], "\(seen)")
        for name in ["openai-project", "openai-beta", "x-stainless-lang", "cookie", "x-forwarded-for"] {
            #expect(seen.headerValues(name).isEmpty, "\(name): \(seen)")
        }
        #expect(seen.headerValues("user-agent") == ["OpenAI/Python 1.50.0"] && seen.headerValues("accept") == ["application/json"])
        #expect(seen.headerValues("anthropic-version") == ["2023-06-01"] && seen.headerValues("x-goog-api-client") == ["genai-js/1.0"])
        #expect(seen.headerValues("content-type") == ["application/json"], "\(seen)")
        #expect(!seen.allHeaderValues.contains { $0.contains("agent") && !$0.contains("genai") }, "\(seen)")
    }

    /// The allowlist itself, on the paths real clients send: Cline 2.x and
    /// 3.x, the OpenAI and Anthropic SDKs (aider and mini-swe-agent through
    /// litellm), Google's genai SDK.
    @Test func theAllowlistOnRealClientsPaths() {
        let yes: [(RouteAllowlist.Dialect, String, String)] = [
            (.openai, "POST", "/chat/completions"), (.openai, "POST", "/responses"), (.openai, "POST", "/completions"),
            (.openai, "POST", "/responses/input_tokens"), (.openai, "GET", "/models"), (.openai, "HEAD", "/models"),
            (.openai, "GET", "/models/deepseek/deepseek-r1:free"), (.openai, "POST", "/v1/chat/completions"),
            (.anthropic, "POST", "/v1/messages"), (.anthropic, "POST", "/v1/messages/count_tokens"),
            (.anthropic, "GET", "/v1/models/claude-sonnet-4-5"), (.gemini, "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
            (.gemini, "POST", "/v1/models/g:countTokens"), (.gemini, "GET", "/v1beta/models?pageSize=50"),
            (.gemini, "POST", "/v1beta/openai/chat/completions"),
        ]
        for (d, m, p) in yes { #expect(RouteAllowlist.allows(d, method: m, path: p), "\(d) \(m) \(p)") }
        let no: [(RouteAllowlist.Dialect, String, String)] = [
            (.openai, "POST", "/embeddings"), (.openai, "POST", "/images/generations"), (.openai, "POST", "/audio/speech"),
            (.openai, "POST", "/moderations"), (.openai, "POST", "/assistants"), (.openai, "POST", "/vector_stores"),
            (.openai, "POST", "/chat/completions/chatcmpl-1"), (.openai, "DELETE", "/chat/completions/chatcmpl-1"),
            (.openai, "POST", "/models"), (.openai, "OPTIONS", "/chat/completions"), (.openai, "POST", "chat/completions"),
            (.anthropic, "POST", "/v1/complete"), (.anthropic, "POST", "/v2/messages"), (.anthropic, "GET", "/v1/messages"),
            (.gemini, "POST", "/v1beta/models/m"), (.gemini, "POST", "/v1beta/models/:generateContent"),
            (.gemini, "POST", "/v1beta/models/m:generateContent/x"), (.gemini, "POST", "/v9/models/m:generateContent"),
            (.gemini, "POST", "/v1beta/files"), (.gemini, "POST", "/upload/v1beta/files"),
        ]
        for (d, m, p) in no { #expect(!RouteAllowlist.allows(d, method: m, path: p), "\(d) \(m) \(p)") }
    }

    /// CLINE_PROVIDER_HEADERS: `Name: value` entries separated by `;` or
    /// newlines, validated at start (an error never quotes a value); the
    /// values reach the proxy's ticket and nothing that is logged.
    @Test func operatorHeadersAreValidatedAndKeptSecret() throws {
        let secret = "org-very-secret-0123456789"
        let env = Harness.minimalConfig.merging(["GENERATORS": "cline,scaffold", "CLINE_ENABLED": "true",
                                                 "CLINE_PROVIDER": "openai", "CLINE_API_KEY": Self.key,
                                                 "CLINE_PROVIDER_HEADERS": "OpenAI-Organization: \(secret); OpenAI-Project:proj-2\n"
                                                    + " anthropic-beta: a-1,b-2 ;"]) { $1 }
        let config = try RunnerConfiguration(environment: env)
        #expect(config.clineProviderHeaders == [ProviderHeader(name: "OpenAI-Organization", value: secret),
                                                ProviderHeader(name: "OpenAI-Project", value: "proj-2"),
                                                ProviderHeader(name: "anthropic-beta", value: "a-1,b-2")])
        let ticket = JobLaunch(config: config, childPath: "/nonexistent").proxyTicket(workspace: "/nonexistent/w", repoURL: nil)
        #expect(ticket.providerHeaders == config.clineProviderHeaders)
        #expect(!"\(ticket)".contains(secret) && !String(reflecting: ticket).contains(secret), "\(ticket)")
        #expect(try RunnerConfiguration(environment: Harness.minimalConfig).clineProviderHeaders.isEmpty)
        for bad in ["Authorization: Bearer \(secret)", "x-api-key: \(secret)", "Host: \(secret)", "Content-Length: 5",
                    "X-Agent-Runner-Route: \(secret)", "Bad Name: \(secret)", "OpenAI-Project \(secret)", "X-Empty:",
                    "X-A: \(secret); x-a: \(secret)", "X-Ctl: a\u{7f}\(secret)"] {
            do {
                _ = try RunnerConfiguration(environment: Harness.minimalConfig.merging(["CLINE_PROVIDER_HEADERS": bad]) { $1 })
                Issue.record("accepted \(bad.debugDescription)")
            } catch let error as ConfigurationError {
                #expect("\(error)".contains("CLINE_PROVIDER_HEADERS") && !"\(error)".contains(secret), "\(error)")
            }
        }
    }
}
