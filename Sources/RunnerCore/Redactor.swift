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

    private static let patterns: [(NSRegularExpression, String)] = [
        (#"(?i)\b(authorization|proxy-authorization|x-goog-api-key|x-api-key)(\s*[:=]\s*)[^\r\n]+"#, "$1$2[REDACTED]"),
        (#"github_pat_[A-Za-z0-9_]{20,}"#, "[REDACTED]"),
        (#"gh[pousr]_[A-Za-z0-9]{20,}"#, "[REDACTED]"),
        (#"AIza[0-9A-Za-z_\-]{30,}"#, "[REDACTED]"),
        // URL schemes are bounded ({0,31}): an unbounded one makes a long line
        // without "://" cost quadratic time (a 64 KiB line took minutes).
        (#"(?i)([a-z][a-z0-9+.\-]{0,31}://)[^/@\s:]*:[^/@\s]*@"#, "$1[REDACTED]@"),
        (#"(?i)([a-z][a-z0-9+.\-]{0,31}://)(x-access-token|oauth2|[^/@\s:]{20,})@"#, "$1[REDACTED]@"),
        (#"(?i)([?&](key|access_token|token)=)[^&\s]+"#, "$1[REDACTED]"),
    ].map { (try! NSRegularExpression(pattern: $0.0), $0.1) }

    /// `text` with every secret replaced by `[REDACTED]`.
    public func redact(_ text: String) -> String {
        var out = text
        for s in secrets where out.contains(s) {
            out = out.replacingOccurrences(of: s, with: "[REDACTED]")
        }
        for (re, template) in Self.patterns {
            let range = NSRange(out.startIndex..., in: out)
            out = re.stringByReplacingMatches(in: out, range: range, withTemplate: template)
        }
        return out
    }
}
