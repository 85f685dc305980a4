import Foundation
import ChildGeneration
import RunnerCore
import Testing

@Suite struct TreeSafetyTests {
    static let limits = TreeLimits(maxFiles: 50, maxFileBytes: 1 << 20, maxTotalBytes: 4 << 20)

    static let hostile: [String] = [
        "../escape", "a/../../escape", "/etc/passwd", "//abs", "..", "a/..", "./..",
        ".git/config", ".GIT/config", ".Git/HEAD", "x/.git/hooks/pre-commit", "deep/er/.gIt/x", ".git",
        ".gitmodules", "sub/.GITMODULES", ".git./config", "GIT~1/config", "a\u{0}b", "line\nbreak", "tab\there",
        "esc\u{1b}[31m", "del\u{7f}", String(repeating: "x", count: 256), "a/" + String(repeating: "y", count: 256) + "/b",
        String(repeating: "d/", count: 2100) + "f", "", ".", "./", "back\\slash", "..\\..\\win",
        "a/./../..", "/", "x/../../../../tmp/pwn", "../../../../../../root/.ssh/authorized_keys",
        ".git/hooks/post-checkout", "node_modules/../../x", "ok/\u{0}/nul", "cr\rreturn", "\u{1}start",
        ".GiT", "a/.git", "a/.git/", "foo/.gitmodules",
    ]

    @Test(arguments: hostile)
    func hostilePathIsRejected(path: String) {
        guard case .failure = PathPolicy.normalize(path) else {
            Issue.record("accepted hostile path \(path.debugDescription)")
            return
        }
    }

    @Test func corpusIsLargeEnough() { #expect(Self.hostile.count >= 40) }

    @Test(arguments: [("./a", "a"), ("a//b", "a/b"), ("a/./b/", "a/b"), ("src/.github/ci.yml", "src/.github/ci.yml"),
                      (".gitignore", ".gitignore"), ("dir/.gitkeep", "dir/.gitkeep")])
    func benignFormsAreNormalised(raw: String, normal: String) throws {
        #expect(try PathPolicy.normalize(raw).get() == normal)
    }

    @Test func writerRejectsEveryBadPathAndWritesNothing() throws {
        let root = TestEnv.tempDir("w")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let repo = root + "/repo"
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        let files: [(path: String, content: [UInt8])] = [("README.md", Array("x".utf8)), ("../outside", [1]),
                                                         (".git/config", [2]), ("big", [UInt8](repeating: 0, count: 2 << 20))]
        let error = #expect(throws: JobFailure.self) { try TreeWriter(root: repo, limits: Self.limits).write(files) }
        #expect(error?.code == .unsafeOutput)
        #expect(error?.message.contains("../outside") == true)
        #expect(error?.message.contains(".git/config") == true)
        #expect(error?.message.contains("big") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: repo).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: root + "/outside"))
    }

    @Test func writerRefusesToFollowASymlinkPlantedInTheTree() throws {
        let root = TestEnv.tempDir("s")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let repo = root + "/repo", outside = root + "/outside"
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: repo + "/link", withDestinationPath: outside)
        let error = #expect(throws: JobFailure.self) {
            try TreeWriter(root: repo, limits: Self.limits).write([("link/pwned", Array("x".utf8))])
        }
        #expect(error?.code == .unsafeOutput)
        #expect(error?.message.contains("link/pwned (a symlink or escape on the way)") == true, "\(error?.message ?? "")")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
    }

    @Test func writerWritesNestedFiles() throws {
        let repo = TestEnv.tempDir("n")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        let summary = try TreeWriter(root: repo, limits: Self.limits).write([("./a//b/c.txt", Array("hi".utf8)),
                                                                              ("README.md", Array("r".utf8))])
        #expect(summary.files == ["README.md", "a/b/c.txt"])
        #expect(try String(contentsOfFile: repo + "/a/b/c.txt", encoding: .utf8) == "hi")
    }

    @Test func scannerRejectsSymlinksFifosAndGitDirectories() throws {
        let repo = TestEnv.tempDir("scan")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        try "r".write(toFile: repo + "/README.md", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: repo + "/evil", withDestinationPath: "/etc/passwd")
        #expect(mkfifo(repo + "/pipe", 0o600) == 0)
        try FileManager.default.createDirectory(atPath: repo + "/sub/.GIT", withIntermediateDirectories: true)
        let error = #expect(throws: JobFailure.self) { try TreeScanner.scan(repo, limits: Self.limits) }
        #expect(error?.code == .unsafeOutput)
        for name in ["evil (symlink)", "pipe (special file", "sub/.GIT"] {
            #expect(error?.message.contains(name) == true, "\(error?.message ?? "") should name \(name)")
        }
    }

    @Test func scannerEnforcesLimits() throws {
        let repo = TestEnv.tempDir("lim")
        defer { try? FileManager.default.removeItem(atPath: repo) }
        for i in 0..<5 { try "x".write(toFile: repo + "/f\(i)", atomically: true, encoding: .utf8) }
        let tight = TreeLimits(maxFiles: 3, maxFileBytes: 10, maxTotalBytes: 100)
        let error = #expect(throws: JobFailure.self) { try TreeScanner.scan(repo, limits: tight) }
        #expect(error?.message.contains("more than the limit of 3") == true)
    }
}

@Suite struct RedactorTests {
    static func randomToken(_ prefix: String, _ n: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        return prefix + String((0..<n).map { _ in alphabet.randomElement()! })
    }

    @Test func randomTokensInRandomTextAreRemoved() {
        let redactor = Redactor()
        let words = ["push", "failed:", "token", "=", "see", "https://github.com/a/b", "(", ")", "\"", "'", ":"]
        for _ in 0..<300 {
            let token = [Self.randomToken("ghp_", 36), Self.randomToken("gho_", 36), Self.randomToken("ghs_", 36),
                         Self.randomToken("ghu_", 40), Self.randomToken("ghr_", 36), Self.randomToken("github_pat_", 60),
                         Self.randomToken("AIza", 35)].randomElement()!
            var parts = (0..<Int.random(in: 0...6)).map { _ in words.randomElement()! }
            parts.insert(token, at: Int.random(in: 0...parts.count))
            let text = parts.joined(separator: [" ", "", "\t"].randomElement()!)
            let out = redactor.redact(text)
            #expect(!out.contains(token), "leaked in \(out)")
        }
    }

    @Test func headersUserinfoAndKnownSecretsAreRemoved() {
        let r = Redactor(secrets: ["s3cr3t-value"])
        #expect(!r.redact("Authorization: Bearer abc.def").contains("abc.def"))
        #expect(!r.redact("x-goog-api-key: KEY123").contains("KEY123"))
        #expect(!r.redact("https://x-access-token:hunter2@github.com/a/b.git").contains("hunter2"))
        #expect(!r.redact("https://user:pw@example.com/").contains("pw@"))
        #expect(!r.redact("the value s3cr3t-value leaked").contains("s3cr3t-value"))
    }

    @Test(arguments: ["https://github.com/acme/shop.git", "mail bot@architex.local now", "file:///tmp/remote.git",
                      "http://localhost:8080/v1beta/models", "user@example.com wrote", "ghp_short", "see AIza in docs"])
    func ordinaryTextIsUntouched(text: String) {
        #expect(Redactor().redact(text) == text)
    }
}

@Suite struct ProtocolTests {
    @Test func eventsRoundTrip() throws {
        var meta = JobMetadata()
        meta.commitSha = "abc"
        meta.files = 3
        for e in [ChildEvent.log("hello"), .stage(.generating), .succeeded(meta),
                  .failed(JobFailure(.unsafeOutput, "bad path"))] {
            let data = try JSONEncoder().encode(e)
            #expect(try JSONDecoder().decode(ChildEvent.self, from: data) == e)
        }
        let wire = #"{"type":"result","ok":false,"error":{"code":"push_failed","message":"m","retryable":true}}"#
        #expect(try JSONDecoder().decode(ChildEvent.self, from: Data(wire.utf8)) == .failed(JobFailure(.pushFailed, "m")))
    }

    @Test func secretsNeverPrint() {
        let s = ChildSecrets(githubToken: "ghp_x", geminiRouteToken: "route_y")
        #expect(!"\(s)".contains("ghp_x") && !"\(s)".contains("route_y"))
    }
}
