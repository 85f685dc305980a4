/// A generator the chain can run (`GENERATORS`, in order): decoded once from
/// the configuration, then passed around typed. The raw value is the name in
/// `GENERATORS` and in `metadata.generator`.
public enum GeneratorName: String, Sendable, Codable, CaseIterable, Hashable {
    /// The Cline CLI (`CLINE_CMD`).
    case cline
    /// The Gemini API through the egress proxy's keyed route.
    case gemini
    /// The offline scaffold from the palette catalogue.
    case scaffold
    /// aider (`AIDER_CMD`), on the Cline provider route.
    case aider
    /// mini-swe-agent (`MINI_SWE_AGENT_CMD`), on the Cline provider route.
    case miniSWEAgent = "mini-swe-agent"

    /// The agent CLIs: each runs as a process in the job's sandbox and calls
    /// its model through the provider route with the placeholder key.
    public var isAgent: Bool {
        switch self {
        case .cline, .aider, .miniSWEAgent: true
        case .gemini, .scaffold: false
        }
    }

    /// `GENERATORS`: a comma-separated list of known names, at least one.
    public static func parseList(_ text: String) throws -> [GeneratorName] {
        let words = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let known = allCases.map(\.rawValue).joined(separator: ", ")
        var names: [GeneratorName] = []
        for word in words {
            guard let name = GeneratorName(rawValue: word) else {
                throw ConfigurationError("GENERATORS", "'\(word)' is not a generator: must be a comma-separated list of \(known)")
            }
            names.append(name)
        }
        guard !names.isEmpty else { throw ConfigurationError("GENERATORS", "must be a comma-separated list of \(known)") }
        return names
    }
}
