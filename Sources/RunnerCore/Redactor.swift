import Foundation

/// Removes secrets from text before it is logged or recorded: known secret
/// values, GitHub tokens, Google API keys, Authorization-style headers and URL
/// userinfo. Applied to every line the runner writes anywhere.
public struct Redactor: Sendable {
    private let secrets: [String]

    /// `secrets` are exact values (tokens, keys) to hide wherever they appear.
    public init(secrets: [String] = []) {
        self.secrets = secrets.filter { $0.count >= 4 }.sorted { $0.count > $1.count }
    }

    /// This redactor, also hiding `secret` (a value that became known later,
    /// such as a job's push token).
    public func adding(_ secret: String) -> Redactor {
        Redactor(secrets: secrets + [secret])
    }

    /// The token-shaped patterns, each with a test that its regex can only
    /// match a line that passes (a substring every match contains, on the
    /// line or its lowercase form): most lines pass none, so they cost no
    /// regex, and a process that never logs such a line never builds one.
    private struct Pattern: Sendable {
        let regex: String
        let template: String
        let mayMatch: @Sendable (_ text: String, _ lower: String) -> Bool
    }

    private static let table: [Pattern] = [
        Pattern(regex: #"(?i)\b(authorization|proxy-authorization|x-goog-api-key|x-api-key)(\s*[:=]\s*)[^\r\n]+"#,
                template: "$1$2[REDACTED]") { _, l in l.contains("authorization") || l.contains("api-key") },
        Pattern(regex: #"github_pat_[A-Za-z0-9_]{20,}"#, template: "[REDACTED]") { t, _ in t.contains("github_pat_") },
        Pattern(regex: #"gh[pousr]_[A-Za-z0-9]{20,}"#, template: "[REDACTED]") { t, _ in
            ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"].contains { t.contains($0) }
        },
        Pattern(regex: #"AIza[0-9A-Za-z_\-]{30,}"#, template: "[REDACTED]") { t, _ in t.contains("AIza") },
        // URL schemes are bounded ({0,31}): an unbounded one makes a long line
        // without "://" cost quadratic time (a 64 KiB line took minutes).
        Pattern(regex: #"(?i)([a-z][a-z0-9+.\-]{0,31}://)[^/@\s:]*:[^/@\s]*@"#, template: "$1[REDACTED]@") { t, _ in
            t.contains("://") && t.contains("@")
        },
        Pattern(regex: #"(?i)([a-z][a-z0-9+.\-]{0,31}://)(x-access-token|oauth2|[^/@\s:]{20,})@"#,
                template: "$1[REDACTED]@") { t, _ in t.contains("://") && t.contains("@") },
        Pattern(regex: #"(?i)([?&](key|access_token|token)=)[^&\s]+"#, template: "$1[REDACTED]") { _, l in
            l.contains("key=") || l.contains("token=")
        },
    ]

    /// The compiled regexes, in `table`'s order (built on first need).
    private static let compiled: [NSRegularExpression] = table.map { try! NSRegularExpression(pattern: $0.regex) }

    /// `text` with every secret replaced by `[REDACTED]`.
    public func redact(_ text: String) -> String { redact(text, prefiltered: true) }

    /// `redact`, with the substring tests (`prefiltered`) or every regex run
    /// on every line (which must give the same text: a test compares them).
    func redact(_ text: String, prefiltered: Bool) -> String {
        var out = text
        for s in secrets where out.contains(s) {
            out = out.replacingOccurrences(of: s, with: "[REDACTED]")
        }
        var lower = prefiltered ? out.lowercased() : ""
        for (i, pattern) in Self.table.enumerated() {
            if prefiltered, !pattern.mayMatch(out, lower) { continue }
            let range = NSRange(out.startIndex..., in: out)
            let replaced = Self.compiled[i].stringByReplacingMatches(in: out, range: range, withTemplate: pattern.template)
            if prefiltered, replaced != out { lower = replaced.lowercased() }
            out = replaced
        }
        return out
    }
}
