import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Publishing as a branch and a pull request: real pushes to `git
/// http-backend` on loopback, and GitHub's REST API answered by a loopback
/// stand-in (Tests/Fixtures/github_api_server.py) that records every request.
@Suite(.serialized) struct PullRequestTests: ClineFixtures {
    static let token = "ghp_" + "T0kenForThePullRequestTests01234567"

    struct World {
        let h: Harness
        let git: FixtureServer
        let api: FixtureServer
        let apiLog: String
        var owner: String { h.root + "/srv/owner" }
        var bare: String { owner + "/repo.git" }
        func url(_ repo: String = "repo") -> String { "http://127.0.0.1:\(git.port)/owner/\(repo).git" }
        func requests() throws -> [JSONValue] { try FixtureServer.jsonLines(apiLog) }
        func requests(_ method: String, _ suffix: String) throws -> [JSONValue] {
            try requests().filter { $0["method"]?.stringValue == method && $0["path"]?.stringValue?.hasSuffix(suffix) == true }
        }
        func stop() { git.stop(); api.stop(); h.cleanup() }

        /// Runs every queued job once.
        func run(_ extra: [String: String] = [:], apiToken: String? = nil) async throws {
            let env = ["GITHUB_TOKEN": PullRequestTests.token, "JOB_MAX_ATTEMPTS": "1",
                       // Both servers are on loopback: only exact rules open them.
                       "JOB_EGRESS_ALLOW": "127.0.0.1:\(git.port),127.0.0.1:\(api.port)",
                       "GIT_TOKEN_HOSTS": "127.0.0.1:\(git.port)", "GITHUB_API_URL": "http://127.0.0.1:\(api.port)",
                       "PUBLISH_MODE": "pull-request", "DASHBOARD_URL": "https://dash.example/"]
            let r = try await h.agentRunner(["run", "--exit-when-idle", "--concurrency", "1"], env: env.merging(extra) { $1 })
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stderr.contains(PullRequestTests.token))
        }

        /// A project on `repo` with `fields` set, and a job of it.
        func seed(repo: String = "repo", fields: [String: JSONValue] = [:], spec: JSONValue = tinySpec) async throws -> String {
            let project = try await h.store.insertProject(name: "Test project", repoURL: url(repo))
            for (field, value) in fields {
                _ = try await h.store.pool.run("projects") { coll in
                    try CollectionTestOps.setField(coll, id: project, field: field, value: value)
                }
            }
            return try await h.store.insertJob(projectId: project, spec: spec)
        }
    }

    /// A bare repository whose default branch `trunk` has one commit (CLONE_DEFAULT_BRANCH stays main:
    /// the base comes from the API), its git server and the API's stand-in.
    func world(scenario: String = "", apiToken: String = token) async throws -> World {
        let h = try Harness()
        let owner = h.root + "/srv/owner"
        try FileManager.default.createDirectory(atPath: owner, withIntermediateDirectories: true)
        _ = try await Git.run(["init", "-q", "--bare", "-b", "trunk", owner + "/repo.git"])
        let seed = h.root + "/seed"
        _ = try await Git.run(["init", "-q", "-b", "trunk", seed])
        try "# Existing\n".write(toFile: seed + "/EXISTING.md", atomically: true, encoding: .utf8)
        _ = try await Git.run(["-C", seed, "add", "."])
        _ = try await Git.run(["-C", seed, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "existing"])
        _ = try await Git.run(["-C", seed, "push", "-q", owner + "/repo.git", "trunk"])
        let git = try await FixtureServer("git_http_server.py", [h.root + "/srv", Self.token, h.root + "/git.jsonl"])
        let apiLog = h.root + "/api.jsonl"
        let api = try await FixtureServer("github_api_server.py", [apiToken, apiLog, owner, "trunk", scenario])
        return World(h: h, git: git, api: api, apiLog: apiLog)
    }

    @Test func theFirstJobOpensOnePullRequestAndARerunUpdatesIt() async throws {
        let w = try await world()
        defer { w.stop() }
        // The project chooses the mode (the operator's default is push), and its reviewers.
        let first = try await w.seed(fields: ["publishMode": "pull-request", "pullRequestReviewers": ["octocat"]])
        let env = ["PUBLISH_MODE": "push", "PUBLISH_MODES_ALLOWED": "push,pull-request", "PULL_REQUEST_DRAFT": "true",
                   "PULL_REQUEST_LABELS": "architex, generated"]
        try await w.run(env)
        let job1 = try await w.h.job(first)
        #expect(job1["status"]?.stringValue == "done", "\(job1.jsonString)")
        let branch = "architex/test-project"
        let trunk = try await Git.run(["-C", w.bare, "rev-parse", "trunk"])
        let head1 = try await Git.run(["-C", w.bare, "rev-parse", branch])
        // The branch starts from the default branch GitHub named, which is untouched.
        #expect(try await Git.run(["-C", w.bare, "rev-parse", branch + "^"]) == trunk)
        let pr1 = job1["metadata"]?["pullRequest"]
        #expect(pr1?["number"]?.intValue == 1 && pr1?["action"]?.stringValue == "created", "\(pr1?.jsonString ?? "")")
        #expect(pr1?["branch"]?.stringValue == branch && pr1?["base"]?.stringValue == "trunk")
        #expect(pr1?["headSha"]?.stringValue == head1 && pr1?["state"]?.stringValue == "open")
        #expect(pr1?["url"]?.stringValue == "https://github.example/owner/repo/pull/1")
        #expect(job1["metadata"]?["publishMode"]?.stringValue == "pull-request")
        #expect(job1["metadata"]?["branch"]?.stringValue == branch)
        // `agent-runner jobs` shows it.
        let listing = try await w.h.agentRunner(["jobs"])
        #expect(listing.stdout.split(separator: "\n").contains {
            $0.hasPrefix(first) && $0.hasSuffix("https://github.example/owner/repo/pull/1")
        }, "\(listing.stdout)")

        let created = try w.requests("POST", "/repos/owner/repo/pulls")
        try #require(created.count == 1)
        let sent = created[0]["body"]
        #expect(sent?["head"]?.stringValue == branch && sent?["base"]?.stringValue == "trunk")
        #expect(sent?["draft"]?.boolValue == true)
        #expect(sent?["title"]?.stringValue == "Architex: Tiny")
        let body = sent?["body"]?.stringValue ?? ""
        #expect(body.contains("## Components") && body.contains("| `Web` | `frontend` | `react` | `web/` |"), "\(body)")
        #expect(body.contains("## Denied egress") && body.contains("None: the job's egress proxy allowed"), "\(body)")
        // What the branch changes against trunk: the generated tree replaces the branch's whole tree.
        #expect(body.contains("## Files changed") && body.contains("added `README.md`")
                    && body.contains("deleted `EXISTING.md`") && body.contains("file(s) against `trunk`"), "\(body)")
        #expect(body.contains("[Job `\(first)` in the dashboard](https://dash.example/jobs/\(first))"), "\(body)")
        #expect(try w.requests("POST", "/issues/1/labels").first?["body"]?["labels"] == ["architex", "generated"])
        #expect(try w.requests("POST", "/pulls/1/requested_reviewers").first?["body"]?["reviewers"] == ["octocat"])
        #expect(try w.requests().allSatisfy { $0["auth"]?.stringValue == "ok" })
        #expect(try !w.requests().isEmpty)

        // A rerun of the project: on top of the branch's history, the same pull request updated.
        let project = job1["projectId"]!.stringValue!
        var changed = tinySpec.objectValue!
        changed["description"] = "now with a description"
        let second = try await w.h.store.insertJob(projectId: project, spec: .object(changed))
        try await w.run(env)
        let job2 = try await w.h.job(second)
        #expect(job2["status"]?.stringValue == "done", "\(job2.jsonString)")
        #expect(try await Git.run(["-C", w.bare, "rev-parse", branch + "^"]) == head1)
        let pr2 = job2["metadata"]?["pullRequest"]
        #expect(pr2?["number"]?.intValue == 1 && pr2?["action"]?.stringValue == "updated", "\(pr2?.jsonString ?? "")")
        #expect(pr2?["headSha"]?.stringValue == (try await Git.run(["-C", w.bare, "rev-parse", branch])))
        #expect(try w.requests("POST", "/repos/owner/repo/pulls").count == 1, "never a second pull request")
        let updated = try w.requests("PATCH", "/repos/owner/repo/pulls/1")
        #expect(updated.count == 1)
        // The body is written from the whole branch: the first run's files are still listed.
        #expect(updated.first?["body"]?["body"]?.stringValue?.contains("added `README.md`") == true)
        #expect(try await Git.run(["-C", w.bare, "rev-parse", "trunk"]) == trunk)
        for id in [first, second] { #expect(!(try await w.h.job(id)).jsonString.contains(Self.token)) }
    }

    @Test func deniedEgressIsReportedByHostInTheBody() async throws {
        let w = try await world()
        defer { w.stop() }
        // The agent asks the proxy for two hosts that no rule allows, one of them twice.
        let cline = try fakeCline(w.h, """
            for u in https://denied.example/ https://denied.example/again https://other.example/; do
              curl -s -o /dev/null -x "$HTTPS_PROXY" "$u"
            done
            printf '# Tiny\\n\\nBuilt by the fake agent.\\n\\n````\\n@octocat </details> [x](https://evil.example)\\n' > README.md
            mkdir -p web && echo 'console.log(1)' > web/index.js
            exit 0
            """)
        // A component name from the diagram with Markdown in it stays one code span.
        var spec = tinySpec.objectValue!
        spec["nodes"] = [["id": "a", "type": "frontend", "data": ["label": "W`eb | @octocat", "framework": "react"]],
                         ["id": "b", "type": "backend", "data": ["label": "API", "framework": "express"]]]
        let id = try await w.seed(spec: .object(spec))
        try await w.run(env(cline, ["GITHUB_TOKEN": Self.token]))
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        let body = try w.requests("POST", "/repos/owner/repo/pulls").first?["body"]?["body"]?.stringValue ?? ""
        #expect(body.contains("| ``W`eb \\| @octocat`` | `frontend` | `react` | — |"), "\(body)")
        #expect(body.contains("| Host | Requests denied |\n|---|---|\n| `denied.example` | 2 |\n| `other.example` | 1 |"), "\(body)")
        #expect(body.contains("Built by the fake agent."), "the summary is the generated README's opening: \(body)")
        // What the agent wrote is quoted by construction: a fence longer than any it holds, so nothing in it
        // closes the block (no mention, no link, no HTML).
        #expect(body.contains("## Summary\n\n`````text\n# Tiny") && body.contains("evil.example)\n`````\n"), "\(body)")
    }

    @Test(arguments: [
        ("forbidden", "pull_request_forbidden", "Resource not accessible by integration"),
        ("invalid", "pull_request_invalid", "No commits between trunk and architex/test-project"),
        ("rate-limited", "rate_limited", "Retry-After 3600"),
        ("protected", "branch_protected", "GitHub protects architex/test-project"),
    ])
    func eachRefusalGivesItsCode(scenario: String, code: String, quote: String) async throws {
        let w = try await world(scenario: scenario)
        defer { w.stop() }
        let id = try await w.seed()
        try await w.run()
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(job["error"]?["code"]?.stringValue == code, "\(job["error"]?.jsonString ?? "")")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains(quote), "\(message)")
        #expect(job["error"]?["retryable"]?.boolValue == JobErrorCode(rawValue: code)?.retryable)
        if scenario == "protected" {
            #expect(try w.requests("POST", "/pulls").isEmpty)
            #expect(try await Git.run(["-C", w.bare, "branch", "--list", "architex/*"]).isEmpty, "nothing pushed")
        } else {
            // Both facts: the push succeeded, the pull request did not.
            let head = try await Git.run(["-C", w.bare, "rev-parse", "architex/test-project"])
            #expect(message.contains("\(head) is on architex/test-project, but the pull request failed"), "\(message)")
        }
    }

    @Test func aRepositoryGitHubDoesNotKnowAndARefusedTokenGiveTheirCodes() async throws {
        let w = try await world(apiToken: "ghp_" + "SomeOtherTokenTheAPIExpects000000000")
        defer { w.stop() }
        let missing = try await w.seed(repo: "missing")
        try await w.run()
        let job = try await w.h.job(missing)
        #expect(job["error"]?["code"]?.stringValue == "pull_request_forbidden", "\(job["error"]?.jsonString ?? "")")
        #expect(job["error"]?["message"]?.stringValue?.contains("GitHub refused the token; GitHub: HTTP 401: Bad credentials") == true)
        try await confirmationOfNotFound()
    }

    /// repository_not_found: the API knows no such repository (with the right token).
    func confirmationOfNotFound() async throws {
        let w = try await world()
        defer { w.stop() }
        let missing = try await w.seed(repo: "missing")
        try await w.run()
        let job = try await w.h.job(missing)
        #expect(job["error"]?["code"]?.stringValue == "repository_not_found", "\(job["error"]?.jsonString ?? "")")
        #expect(job["error"]?["retryable"]?.boolValue == false)
        #expect(job["error"]?["message"]?.stringValue?.contains("GitHub has no repository owner/missing") == true)
    }

    @Test func aSecondaryRateLimitIsWaitedOutAndAFailedPullRequestIsOpenedByTheNextAttemptAlone() async throws {
        let w = try await world(scenario: "secondary-once")
        defer { w.stop() }
        let id = try await w.seed()
        try await w.run()
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(logs(job).contains { $0.contains("GitHub's rate limit: waiting 1 s (Retry-After)") }, "\(logs(job))")
        #expect(try w.requests("POST", "/repos/owner/repo/pulls").count == 2)

        let v = try await world(scenario: "fail-once")
        defer { v.stop() }
        let failing = try await v.seed()
        try await v.run()
        let failed = try await v.h.job(failing)
        #expect(failed["error"]?["code"]?.stringValue == "pull_request_failed", "\(failed.jsonString)")
        #expect(failed["error"]?["retryable"]?.boolValue == true)
        let head = try await Git.run(["-C", v.bare, "rev-parse", "architex/test-project"])
        #expect(try await v.h.store.retry(failing))
        try await v.run()
        let again = try await v.h.job(failing)
        #expect(again["status"]?.stringValue == "done", "\(again.jsonString)")
        #expect(again["metadata"]?["alreadyPushed"]?.boolValue == true)
        #expect(again["metadata"]?["pullRequest"]?["headSha"]?.stringValue == head)
        #expect(try await Git.run(["-C", v.bare, "rev-parse", "architex/test-project"]) == head, "not pushed again")
    }

    @Test func branchModePushesOntoThePublishBranchAndPushModeIsUnchanged() async throws {
        let w = try await world()
        defer { w.stop() }
        let id = try await w.seed(fields: ["publishMode": "branch"])
        try await w.run(["PUBLISH_MODE": "push", "PUBLISH_MODES_ALLOWED": "push,branch",
                         "PUBLISH_BRANCH": "agent/{projectSlug}-{jobId}", "CLONE_DEFAULT_BRANCH": "trunk"])
        let job = try await w.h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        let branch = "agent/test-project-\(id)"
        #expect(job["metadata"]?["branch"]?.stringValue == branch)
        #expect(job["metadata"]?["publishMode"]?.stringValue == "branch")
        #expect(try await Git.run(["-C", w.bare, "rev-parse", branch + "^"]) == (try await Git.run(["-C", w.bare, "rev-parse", "trunk"])))
        #expect(try w.requests().isEmpty, "branch mode never calls GitHub's API")

        // A mode the operator does not allow is refused before anything runs.
        let refused = try await w.seed(fields: ["publishMode": "pull-request"])
        try await w.run(["PUBLISH_MODE": "push", "PUBLISH_MODES_ALLOWED": "push,branch"])
        let r = try await w.h.job(refused)
        #expect(r["error"]?["code"]?.stringValue == "invalid_spec", "\(r.jsonString)")
        #expect(r["error"]?["message"]?.stringValue?.contains("PUBLISH_MODES_ALLOWED=push,branch") == true)

        // Push mode: onto CLONE_DEFAULT_BRANCH, as before.
        let pushed = try await w.seed()
        try await w.run(["PUBLISH_MODE": "push", "CLONE_DEFAULT_BRANCH": "trunk"])
        let p = try await w.h.job(pushed)
        #expect(p["status"]?.stringValue == "done", "\(p.jsonString)")
        #expect(p["metadata"]?["branch"]?.stringValue == "trunk" && p["metadata"]?["pullRequest"] == nil)
        #expect(p["metadata"]?["commitSha"]?.stringValue == (try await Git.run(["-C", w.bare, "rev-parse", "trunk"])))
        #expect(try w.requests().isEmpty)
    }
}
