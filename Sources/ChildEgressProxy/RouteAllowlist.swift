import RunnerCore

/// What the keyed routes forward with the operator's key: model calls only.
/// The agent writes these requests, and the key opens the whole account
/// (files, batches, fine-tunes, cached contents, other jobs' data), so each
/// dialect has an allowlist of method and path, and of request headers.
///
/// Paths are relative to the upstream's base URL, as the route receives them
/// after `/provider` or `/gemini`; the query is not part of the match. A
/// segment is never empty (`//` is refused), and `.`/`..` segments are
/// refused before (`ProviderRoute.hasDotSegment`).
enum RouteAllowlist {
    /// The API a keyed route speaks.
    enum Dialect: Equatable {
        /// Anthropic Messages; the base URL is the host root (`/v1/…`).
        case anthropic
        /// OpenAI and its compatibles (OpenAI, OpenRouter, an
        /// OpenAI-compatible base URL); the base URL ends with the version.
        case openai
        /// Gemini's generateContent API; the base URL is the host root (`/v1beta/…`).
        case gemini

        init(_ kind: ClineProvider.Kind) {
            switch kind {
            case .anthropic: self = .anthropic
            case .gemini: self = .gemini
            case .openai, .openrouter, .openaiCompatible: self = .openai
            }
        }
    }

    /// Whether `method` on `path` (query included or not) is a model call,
    /// a model listing or a token count of `dialect`. HEAD goes wherever GET does.
    static func allows(_ dialect: Dialect, method: String, path: String) -> Bool {
        let plain = path.prefix { $0 != "?" && $0 != "#" }
        guard plain.hasPrefix("/") else { return false }
        let segments = plain.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !segments.contains(where: \.isEmpty) else { return false }
        let read = method == "GET" || method == "HEAD"
        guard read || method == "POST" else { return false }
        switch dialect {
        case .anthropic:
            guard segments.first == "v1" else { return false }
            let rest = Array(segments.dropFirst())
            if read { return isModelListing(rest) }
            return rest == ["messages"] || rest == ["messages", "count_tokens"]
        case .openai:
            // A compatible server's base URL may lack the version its clients add.
            let rest = segments.first == "v1" ? Array(segments.dropFirst()) : segments
            if read { return isModelListing(rest) }
            return [["chat", "completions"], ["completions"], ["responses"], ["responses", "input_tokens"]].contains(rest)
        case .gemini:
            guard let version = segments.first, geminiVersions.contains(version) else { return false }
            let rest = Array(segments.dropFirst())
            // Gemini's OpenAI-compatible endpoint.
            if rest.first == "openai" {
                let openai = Array(rest.dropFirst())
                return read ? isModelListing(openai) : openai == ["chat", "completions"]
            }
            guard rest.first == "models", rest.count <= 2 else { return false }
            if read { return rest.count == 1 || !rest[1].contains(":") }
            guard rest.count == 2, let colon = rest[1].lastIndex(of: ":"), colon != rest[1].startIndex else { return false }
            return geminiActions.contains(String(rest[1][rest[1].index(after: colon)...]))
        }
    }

    /// `models` or `models/<id>` (ids may hold slashes: OpenRouter's `author/slug`).
    static func isModelListing(_ segments: [String]) -> Bool { segments.first == "models" }

    /// The Gemini API versions a route forwards.
    static let geminiVersions: Set<String> = ["v1", "v1beta", "v1alpha"]
    /// The Gemini model methods a route forwards: generation, its streaming form, token counting.
    static let geminiActions: Set<String> = ["generateContent", "streamGenerateContent", "countTokens"]

    /// The request headers forwarded from the caller (lower case): the
    /// body's type, what the client accepts, who it is, and the API version
    /// headers the SDKs send. Anything else is dropped: credentials (the
    /// route adds the real key), organisation, project and beta headers
    /// (`OpenAI-Organization`, `OpenAI-Project`, `anthropic-beta`,
    /// `OpenAI-Beta`, `x-goog-user-project`: only the operator's
    /// CLINE_PROVIDER_HEADERS sets those), and the SDKs' telemetry
    /// (`x-stainless-*`), which no API needs.
    static let forwardedHeaders: Set<String> = ["content-type", "accept", "accept-encoding", "user-agent",
                                                "anthropic-version", "x-goog-api-client"]
}
