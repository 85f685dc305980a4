import Foundation
import Testing

/// Tests/Fixtures/mongo_proxy.py in front of the test server, shared by the
/// suites that count what reaches the database or refuse some of it: it
/// answers commands that contain any of `refusing` with an error, with
/// `countingIn` it appends one line per command ("<command> <collection>")
/// to `<directory>/commands.log`, and it gets answers wrong the way some
/// MongoDB-wire servers do (`Misbehaviour`).
struct DatabaseProxy {
    /// How the proxy's server gets answers wrong (mongo_proxy.py's options).
    enum Misbehaviour {
        /// A change stream whose request contains `pattern` delivers no event
        /// (only those of `types`' operationTypes, when given).
        case dropEvents(pattern: String, types: [String] = [])
        /// A find's dotted projection (`"lease.token": 1`) answered as a flat key.
        case flattenDotted
        /// A find's projected sub-document (`"lease": 1`) answered as flat dotted keys.
        case flattenNested
        /// Every date in a find's answer comes back as an ISO string.
        case datesAsStrings
        /// The first update containing `pattern` reaches the server, and its
        /// answer is lost (the connection closes); the driver's retry of it is
        /// answered as by a server that does not recognise retried writes: it matched nothing.
        case loseReply(pattern: String)

        var arguments: [String] {
            switch self {
            case .dropEvents(let pattern, let types): ["--drop-events", pattern + (types.isEmpty ? "" : "=" + types.joined(separator: ","))]
            case .flattenDotted: ["--flatten-dotted"]
            case .flattenNested: ["--flatten-nested"]
            case .datesAsStrings: ["--dates-as-strings"]
            case .loseReply(let pattern): ["--lose-reply", pattern]
            }
        }
    }

    let server: FixtureServer
    /// Where the commands are counted; nil when they are not.
    let countFile: String?

    init(refusing: [String] = [], countingIn directory: String? = nil, misbehaving: [Misbehaviour] = []) async throws {
        let upstream = try #require(TestEnv.mongoURI.split(separator: ":").last?.split(separator: "/").first)
        countFile = directory.map { $0 + "/commands.log" }
        server = try await FixtureServer("mongo_proxy.py", [String(upstream)] + (countFile.map { ["--count", $0] } ?? [])
                                         + misbehaving.flatMap(\.arguments) + refusing)
    }

    /// The connection string that goes through the proxy.
    var uri: String { "mongodb://127.0.0.1:\(server.port)/?directConnection=true" }

    /// The commands counted so far, in order (empty when not counting);
    /// `monitoring: false` leaves out the driver's server monitoring (`hello`,
    /// `isMaster`), which follows the clock rather than the work.
    func commands(monitoring: Bool = true) -> [String] {
        guard let countFile else { return [] }
        let all = ((try? String(contentsOfFile: countFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        return monitoring ? all : all.filter { !["hello ", "isMaster "].contains($0) }
    }

    /// The commands counted so far, as `commands()`, each with the number of
    /// distinct lease tokens it names (updates and findAndModify; 0 for the rest).
    func commandsWithTokens() -> [(command: String, tokens: Int)] {
        guard let countFile else { return [] }
        let text = (try? String(contentsOfFile: countFile + ".tokens", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            let cut = line.lastIndex(of: " ") ?? line.endIndex
            return (String(line[..<cut]), Int(line[cut...].dropFirst()) ?? 0)
        }
    }

    /// Forgets the commands counted so far.
    func resetCount() {
        if let countFile {
            try? FileManager.default.removeItem(atPath: countFile)
            try? FileManager.default.removeItem(atPath: countFile + ".tokens")
        }
    }

    func stop() { server.stop() }
}
