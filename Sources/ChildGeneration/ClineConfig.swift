#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// The per-job Cline configuration: the provider, model, base URL and a
/// placeholder key, written into the agent's HOME the way the Cline CLI reads
/// it, so a run needs no flag or environment variable that carries a key.
///
/// Both CLI generations read `$CLINE_DIR` (default `$HOME/.cline`), data in
/// `<CLINE_DIR>/data`; both files sets are written, so either CLI works:
/// - 3.x (`@cline/cli`): `data/settings/providers.json`, the file
///   `cline auth --provider … --apikey … --modelid …` writes:
///   `{"version":1,"lastUsedProvider":ID,"modes":{},"providers":{ID:{"settings":
///   {"provider":ID,"apiKey":…,"model":…,"baseUrl":…},"updatedAt":…,"tokenSource":"manual"}}}`.
/// - 2.x (`cline` 2.x): `data/globalState.json` (provider, model and base URL
///   keys of the VS Code extension's state) and `data/secrets.json` (the key).
///
/// The key in every file is `ClineProvider.placeholderKey`; the egress proxy
/// behind `baseURL` drops it and adds CLINE_API_KEY.
public struct ClineConfig: Sendable, Equatable {
    public var provider: ClineProvider
    public var model: String?
    /// The provider route as the agent reaches it (the proxy's route inside
    /// the job), standing for `provider.upstreamBaseURL`; no trailing slash.
    public var baseURL: String

    public init(provider: ClineProvider, model: String?, baseURL: String) {
        self.provider = provider
        self.model = model
        var url = baseURL
        while url.hasSuffix("/") { url.removeLast() }
        self.baseURL = url
    }

    /// The 3.x provider id.
    public var providerID: String {
        switch provider.kind {
        case .anthropic: "anthropic"
        case .openai: "openai-native"
        case .openrouter: "openrouter"
        case .gemini: "gemini"
        case .openaiCompatible: "openai-compatible"
        }
    }

    /// The 3.x `baseUrl`. Its SDKs take the API version inside the base URL
    /// (Anthropic `…/v1`, Gemini `…/v1beta`), while `upstreamBaseURL` of those
    /// two is the host root, so the version is appended; the OpenAI dialects'
    /// upstream already ends with its version.
    public var baseURLv3: String {
        switch provider.kind {
        case .anthropic: baseURL + "/v1"
        case .gemini: baseURL + "/v1beta"
        case .openai, .openrouter, .openaiCompatible: baseURL
        }
    }

    /// The 2.x provider id. 2.x has no base URL setting for OpenAI (native)
    /// or OpenRouter, so both use its OpenAI-compatible provider ("openai",
    /// `openAiBaseUrl`), which speaks the same chat/completions API.
    public var providerIDv2: String {
        switch provider.kind {
        case .anthropic: "anthropic"
        case .gemini: "gemini"
        case .openai, .openrouter, .openaiCompatible: "openai"
        }
    }

    /// The request path (after the provider route) of a model call, per CLI
    /// generation: what the egress proxy sees and forwards to
    /// `upstreamBaseURL` + the same path.
    public func callPath(v3: Bool, model m: String = "MODEL") -> String {
        switch provider.kind {
        case .anthropic: "/v1/messages"
        case .gemini: "/v1beta/models/\(m):streamGenerateContent"
        case .openai: v3 ? "/responses" : "/chat/completions"
        case .openrouter, .openaiCompatible: "/chat/completions"
        }
    }

    /// providers.json (3.x).
    public func providersJSON(now: Date = Date()) -> JSONValue {
        var settings: [String: JSONValue] = ["provider": .string(providerID), "apiKey": .string(ClineProvider.placeholderKey),
                                             "baseUrl": .string(baseURLv3)]
        if let model { settings["model"] = .string(model) }
        let stamp = ISO8601DateFormatter().string(from: now)
        return ["version": 1, "lastUsedProvider": .string(providerID), "modes": [:],
                "providers": .object([providerID: ["settings": .object(settings), "updatedAt": .string(stamp),
                                                   "tokenSource": "manual"]])]
    }

    /// globalState.json (2.x): provider for both modes, the model under the
    /// provider's model key, the base URL under its base-URL key, onboarding
    /// marked done (else a headless run stops with "Not authenticated"), and
    /// telemetry off (its host is not in the job's egress rules: each attempt
    /// would only be a refused CONNECT in the job's log).
    public var globalStateJSON: JSONValue {
        let p = providerIDv2
        var o: [String: JSONValue] = ["welcomeViewCompleted": true, "isNewUser": false, "mode": "act",
                                      "actModeApiProvider": .string(p), "planModeApiProvider": .string(p),
                                      "telemetrySetting": "disabled"]
        let modelKey = p == "openai" ? "OpenAiModelId" : "ApiModelId"
        if let model {
            o["actMode" + modelKey] = .string(model)
            o["planMode" + modelKey] = .string(model)
        }
        switch provider.kind {
        case .anthropic: o["anthropicBaseUrl"] = .string(baseURL)
        case .gemini: o["geminiBaseUrl"] = .string(baseURL)
        case .openai, .openrouter, .openaiCompatible: o["openAiBaseUrl"] = .string(baseURL)
        }
        return .object(o)
    }

    /// secrets.json (2.x): the placeholder under the provider's key field.
    public var secretsJSON: JSONValue {
        switch provider.kind {
        case .anthropic: ["apiKey": .string(ClineProvider.placeholderKey)]
        case .gemini: ["geminiApiKey": .string(ClineProvider.placeholderKey)]
        case .openai, .openrouter, .openaiCompatible: ["openAiApiKey": .string(ClineProvider.placeholderKey)]
        }
    }

    /// Writes the files under `clineDir` (the agent's `$CLINE_DIR`):
    /// directories 0700, files 0600, each replaced atomically. Returns the
    /// paths written.
    @discardableResult
    public func write(clineDir: String) throws -> [String] {
        let data = clineDir + "/data"
        for dir in [clineDir, data, data + "/settings"] {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw Errno(errno, "mkdir \(dir)") }
        }
        let files: [(String, JSONValue)] = [(data + "/settings/providers.json", providersJSON()),
                                            (data + "/globalState.json", globalStateJSON),
                                            (data + "/secrets.json", secretsJSON)]
        for (path, value) in files {
            try Self.writeFile(path, Array((value.prettyString + "\n").utf8))
        }
        return files.map(\.0)
    }

    /// Creates `path.tmp` exclusively (no following links), writes, renames.
    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let tmp = path + ".tmp"
        unlink(tmp)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Errno(errno, "create \(tmp)") }
        defer { close(fd) }
        try writeAll(fd, bytes)
        guard rename(tmp, path) == 0 else { throw Errno(errno, "rename \(tmp)") }
    }
}
