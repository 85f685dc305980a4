import Foundation

/// Reads configuration variables with their defaults (`RunnerConfiguration.defaults`)
/// and checks their form; each reader names the variable in its error.
struct ConfigReader {
    let env: [String: String]
    let defaults: [String: String]
    init(_ env: [String: String]) {
        self.env = env
        defaults = Dictionary(RunnerConfiguration.defaults.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
    }
    func string(_ k: String) -> String {
        if let v = env[k], !v.isEmpty { return v }
        return defaults[k] ?? ""
    }
    func optional(_ k: String) -> String? { let v = string(k); return v.isEmpty ? nil : v }
    func required(_ k: String) throws -> String {
        guard let v = optional(k) else { throw ConfigurationError(k, "is required but not set") }
        return v
    }
    func int(_ k: String, _ range: ClosedRange<Int>) throws -> Int {
        let s = string(k)
        guard let v = Int(s), range.contains(v) else {
            throw ConfigurationError(k, "'\(s)' is not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }
    func double(_ k: String, _ range: ClosedRange<Double>) throws -> Double {
        let s = string(k)
        guard let v = Double(s), range.contains(v) else {
            throw ConfigurationError(k, "'\(s)' is not a number in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }
    func bool(_ k: String) throws -> Bool {
        switch string(k).lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError(k, "'\(string(k))' is not a boolean (true or false)")
        }
    }
}
