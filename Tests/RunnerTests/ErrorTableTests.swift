import Foundation
import RunnerCore
import Testing

/// The error-code tables that operators and the web app read list exactly
/// the codes the code can write (`JobErrorCode`), with the same retryability.
@Suite struct ErrorTableTests {
    /// The rows `| \`code\` | retryable | …` of the first table after the
    /// heading whose text contains `heading`, up to the next heading of that level or above.
    static func table(in file: String, under heading: String) throws -> [(code: String, retryable: String)] {
        let text = try String(contentsOfFile: TestEnv.repoRoot + "/" + file, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("#") && $0.contains(heading) }) else {
            Issue.record("\(file) has no heading \(heading)")
            return []
        }
        let level = lines[start].prefix { $0 == "#" }.count
        var rows: [(String, String)] = []
        var inTable = false
        for line in lines[(start + 1)...] {
            if line.hasPrefix("#"), line.prefix(while: { $0 == "#" }).count <= level { break }
            if line.hasPrefix("|") {
                inTable = true
                let cells = line.split(separator: "|", omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                guard cells.count > 3, cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else { continue }
                rows.append((String(cells[1].dropFirst().dropLast()), cells[2]))
            } else if inTable {
                break
            }
        }
        return rows
    }

    static let documents = [("docs/contract.md", "Error codes"), ("README.md", "Troubleshooting")]

    @Test(arguments: documents) func listsEveryCodeOnceWithItsRetryability(_ doc: (String, String)) throws {
        let rows = try Self.table(in: doc.0, under: doc.1)
        let written = rows.map(\.code)
        let codes = JobErrorCode.allCases.map(\.rawValue)
        #expect(written.sorted() == codes.sorted(), "\(doc.0): table \(written), JobErrorCode \(codes)")
        #expect(Set(written).count == written.count, "\(doc.0) lists a code twice")
        for row in rows {
            guard let code = JobErrorCode(rawValue: row.code) else { continue }
            #expect(row.retryable.lowercased().hasPrefix(code.retryable ? "yes" : "no"),
                    "\(doc.0): \(row.code) is \(code.retryable ? "" : "not ")retryable, the table says \(row.retryable)")
        }
    }
}
