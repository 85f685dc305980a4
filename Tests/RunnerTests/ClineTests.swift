import Foundation
import Generation
import JobStore
import RunnerCore
import Testing

/// Fake `cline` executables run by the real child, inside the real sandbox.
@Suite(.serialized) struct ClineTests {
    /// Writes an executable script at `<root>/bin/cline` (its own directory:
    /// the sandbox grants read+execute on CLINE_CMD's directory).
    func fakeCline(_ h: Harness, _ body: String) throws -> String {
        let dir = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/cline"
        try ("#!/bin/sh\n" + body).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    func env(_ cline: String, _ extra: [String: String] = [:]) -> [String: String] {
        ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline,gemini,scaffold",
         "GITHUB_TOKEN": "ghp_FAKEfakeFAKEfakeFAKEfake0123456789"].merging(extra) { $1 }
    }

    func logs(_ job: JSONValue) -> [String] { job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }

    @Test func successfulClineRunIsCommittedWithReadableLogs() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo '{"type":"say","say":"text","text":"Planning the build"}'
        printf '# Built by fake cline\\n' > README.md
        mkdir -p api && echo 'console.log(1)' > api/index.js
        printf '%s\\n' "$@" > args.txt
        env | sort > env.txt
        echo "plain progress line"
        echo '{"type":"say","say":"completion_result","text":"All done"}'
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(logs(job))")
        #expect(job["metadata"]?["generator"]?.stringValue == "cline")
        let lines = logs(job)
        #expect(lines.contains("cline: Planning the build"))
        #expect(lines.contains("cline: completed: All done"))
        #expect(lines.contains("cline: plain progress line"))
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(tree.contains("api/index.js"))
        let args = try await Git.run(["-C", h.remote, "show", "main:args.txt"]).split(separator: "\n").map(String.init)
        let repo = h.workspace(id) + "/repo"
        #expect(Array(args.prefix(6)) == ["-y", "--json", "-c", repo, "-t", "1200"])
        #expect(args.last?.contains("instructions.md") == true)
        let env = try await Git.run(["-C", h.remote, "show", "main:env.txt"])
        #expect(env.contains("HOME=\(h.workspace(id))/home"))
        #expect(!env.contains("MONGODB_URI") && !env.contains("ghp_") && !env.contains("NOTIFY_SOCKET"))
    }

    @Test func seedTemplateFormWorks() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        [ "$1" = generate ] && [ "$2" = --repo ] && [ "$4" = --instructions ] || exit 9
        cp "$5" README.md && echo ok > marker.txt
        """)
        let id = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: env(cline, ["CLINE_ARGS": "generate --repo {repo} --instructions {instructions}"]))
        #expect(run.status == 0)
        let job = try await h.job(id)
        #expect(job["metadata"]?["generator"]?.stringValue == "cline", "\(logs(job))")
        #expect(try await Git.run(["-C", h.remote, "show", "main:README.md"]).contains("# Build: Tiny"))
    }

    @Test func failingClineFallsBackAndTheLogSaysWhy() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo partial > leftover.txt
        echo '{"type":"error","message":"model overloaded"}'
        exit 1
        """)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["generator"]?.stringValue == "scaffold")
        let lines = logs(job)
        #expect(lines.contains("cline error: model overloaded"))
        #expect(lines.contains { $0.contains("cline: exited with code 1") })
        #expect(lines.contains { $0.contains("gemini skipped: GOOGLE_GEMINI_API_KEY is not set") })
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(!tree.contains("leftover.txt"), "a failed generator's files must not be committed")
    }

    @Test func hangingClineIsStoppedAtItsTimeout() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, "sleep 300 &\nwait\n")
        let id = try await h.seed(tinySpec)
        let started = Date()
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline, ["CLINE_TIMEOUT_SECONDS": "2"])).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["generator"]?.stringValue == "scaffold")
        #expect(logs(job).contains { $0.contains("timed out after CLINE_TIMEOUT_SECONDS=2") })
        #expect(Date().timeIntervalSince(started) < 60)
    }

    @Test func hostileClineOutputIsRejectedAndCannotEscape() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let cline = try fakeCline(h, """
        echo hi > README.md
        ln -s /etc/passwd leak
        mkfifo pipe
        echo owned > \(h.root)/escaped.txt 2>/dev/null
        cat \(h.root)/secret.txt > stolen.txt 2>/dev/null
        exit 0
        """)
        try "top secret".write(toFile: h.root + "/secret.txt", atomically: true, encoding: .utf8)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env(cline)).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "unsafe_output")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("leak (symlink)") && message.contains("pipe (special file"))
        #expect(!FileManager.default.fileExists(atPath: h.root + "/escaped.txt"), "Landlock must stop writes outside")
        let stolen = (try? String(contentsOfFile: h.workspace(id) + "/repo/stolen.txt", encoding: .utf8)) ?? ""
        #expect(!stolen.contains("top secret"), "Landlock must stop reads outside")
    }

    @Test func nodeRunsConfinedAndCannotReadTheRunnersEnvOtherJobsOrOtherProcesses() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let shared = h.root + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        try "visible-marker\n".write(toFile: shared + "/visible.txt", atomically: true, encoding: .utf8)
        try "JOB_LOG_CAP=1000\n# envfile-secret-marker\n".write(toFile: shared + "/runner.env", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: h.workdir + "/otherjob/input", withIntermediateDirectories: true)
        try "otherjob-secret-marker".write(toFile: h.workdir + "/otherjob/input/spec.json", atomically: true, encoding: .utf8)
        let cline = try fakeCline(h, """
        /usr/bin/node -e "require('fs').writeFileSync('README.md', '# written by node ' + process.version + '\\n')"
        cat \(shared)/visible.txt > visible.txt 2>&1
        cat \(shared)/runner.env > env.txt 2>&1
        cat /proc/1/environ > environ.txt 2>&1
        cat \(h.workdir)/otherjob/input/spec.json > other.txt 2>&1
        ls \(h.workdir) > ls.txt 2>&1
        exit 0
        """)
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle", "--env-file", shared + "/runner.env"],
                                        env: env(cline, ["SANDBOX_READ_PATHS": shared]))
        #expect(r.status == 0, "\(r.stderr)")
        let job = try await h.job(id)
        #expect(job["metadata"]?["generator"]?.stringValue == "cline", "\(logs(job))")
        func committed(_ file: String) async throws -> String { try await Git.run(["-C", h.remote, "show", "main:\(file)"]) }
        #expect(try await committed("README.md").hasPrefix("# written by node v"), "Node must run under the sandbox")
        #expect(try await committed("visible.txt") == "visible-marker", "SANDBOX_READ_PATHS is readable")
        #expect(!(try await committed("env.txt")).contains("envfile-secret-marker"), "the runner's env file is hidden")
        #expect((try await committed("environ.txt")).contains("Permission denied"))
        #expect(!(try await committed("other.txt")).contains("otherjob-secret-marker"), "other jobs are out of reach")
        #expect(!(try await committed("ls.txt")).contains("otherjob"))
    }

    @Test func templateSplittingAndNDJSONFormatting() {
        #expect(ClineGenerator.readable(#"{"type":"say","say":"tool","text":"write a.txt"}"#) == "cline [tool]: write a.txt")
        #expect(ClineGenerator.readable("not json") == "cline: not json")
        #expect(ClineGenerator.readable(#"{"type":"ask","ask":"followup","text":"which db?"}"#) == "cline asks [followup]: which db?")
    }
}
