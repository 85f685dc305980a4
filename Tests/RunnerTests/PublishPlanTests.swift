import Foundation
import RunnerCore
import Testing

/// The publish plan is decided once from the job, its project (fields web
/// users write) and the operator's settings; bad input is refused with
/// `invalid_spec` naming the field, before anything of the job is made.
@Suite struct PublishPlanTests {
    func settings(_ env: [String: String] = [:]) throws -> ChildSettings {
        try RunnerConfiguration(environment: ["MONGODB_URI": "mongodb://h"].merging(env) { $1 }).child
    }

    func plan(job: [String: JSONValue] = [:], project: [String: JSONValue] = [:], name: String = "Shop & Co. — v2!",
              env: [String: String] = [:]) throws -> PublishPlan {
        var p = project
        p["_id"] = p["_id"] ?? ["$oid": "0123456789abcdef01234567"]
        p["name"] = .string(name)
        return try PublishPlan.decide(job: Job(.object(job)), jobId: "65f0c0ffee0000000000abcd", project: Project(.object(p)),
                                      settings: try settings(env))
    }

    func refusal(_ body: () throws -> PublishPlan) -> JobFailure? {
        do { _ = try body(); return nil } catch { return error as? JobFailure }
    }

    @Test func theJobChoosesOverTheProjectOverTheOperator() throws {
        let env = ["PUBLISH_MODES_ALLOWED": "push,branch,pull-request"]
        #expect(try plan(env: env) == PublishPlan(mode: .push, branch: "main"))
        #expect(try plan(project: ["publishMode": "branch"], env: env)
                    == PublishPlan(mode: .branch, branch: "architex/shop-co-v2", chosenBy: "project"))
        #expect(try plan(job: ["publish_mode": "pull-request"], project: ["publishMode": "branch"], env: env).mode == .pullRequest)
        #expect(try plan(env: ["PUBLISH_MODE": "pull-request"]).chosenBy == "PUBLISH_MODE")
    }

    @Test func theBranchTemplateIsExpandedAndChecked() throws {
        let env = ["PUBLISH_MODE": "branch", "PUBLISH_BRANCH": "agent/{projectSlug}/{projectId}-{jobId}"]
        #expect(try plan(env: env).branch == "agent/shop-co-v2/0123456789abcdef01234567-65f0c0ffee0000000000abcd")
        #expect(try plan(name: "¿¿¿", env: env).branch.hasPrefix("agent/project/"))
        let long = try plan(name: String(repeating: "word ", count: 40), env: env).branch
        #expect(long.split(separator: "/")[1].count <= 40)
        // A string project id from the web app may hold anything: the result is checked.
        let bad = refusal { try plan(project: ["_id": "a b..c"], env: env) }
        #expect(bad?.code == .invalidSpec && bad?.message.contains("not a valid branch name") == true, "\(String(describing: bad))")
    }

    @Test func untrustedChoicesAreRefused() throws {
        let notOne = refusal { try plan(job: ["publishMode": "force-push"]) }
        #expect(notOne?.code == .invalidSpec && notOne?.message == "the job's publishMode must be push, branch or pull-request")
        #expect(refusal { try plan(project: ["publishMode": 3]) }?.code == .invalidSpec)
        let notAllowed = refusal { try plan(project: ["publishMode": "pull-request"], env: ["PUBLISH_MODES_ALLOWED": "push,branch"]) }
        #expect(notAllowed?.message.contains("is not allowed here (PUBLISH_MODES_ALLOWED=push,branch)") == true)
        // With PUBLISH_MODES_ALLOWED empty, only PUBLISH_MODE.
        #expect(refusal { try plan(job: ["publishMode": "branch"]) }?.code == .invalidSpec)
        for reviewers: JSONValue in [["not a login"], "octocat", .array(Array(repeating: "octocat", count: 16)), [7]] {
            #expect(refusal { try plan(project: ["pullRequestReviewers": reviewers]) }?.code == .invalidSpec, "\(reviewers)")
        }
        #expect(try plan(project: ["pull_request_reviewers": ["octocat", "hubot"]],
                         env: ["PUBLISH_MODE": "pull-request"]).reviewers == ["octocat", "hubot"])
    }

    @Test func theSettingsAreCheckedAtStart() throws {
        for (env, variable) in [(["PUBLISH_MODE": "merge"], "PUBLISH_MODE"),
                                (["PUBLISH_MODES_ALLOWED": "push,rebase"], "PUBLISH_MODES_ALLOWED"),
                                (["PUBLISH_MODE": "branch", "PUBLISH_MODES_ALLOWED": "push"], "PUBLISH_MODES_ALLOWED"),
                                (["PUBLISH_BRANCH": "architex/{projectName}"], "PUBLISH_BRANCH"),
                                (["PUBLISH_BRANCH": "bad..{jobId}"], "PUBLISH_BRANCH"),
                                (["PULL_REQUEST_LABELS": String(repeating: "x", count: 51)], "PULL_REQUEST_LABELS"),
                                (["PULL_REQUEST_DRAFT": "maybe"], "PULL_REQUEST_DRAFT"),
                                (["DASHBOARD_URL": "javascript:alert(1)"], "DASHBOARD_URL")] {
            #expect(throws: ConfigurationError.self) { try settings(env) }
            do { _ = try settings(env) } catch let e as ConfigurationError { #expect(e.variable == variable, "\(env)") }
        }
        let s = try settings(["PULL_REQUEST_LABELS": " architex , generated,", "DASHBOARD_URL": "https://dash.example/"]).publish
        #expect(s.labels == ["architex", "generated"] && s.dashboardURL == "https://dash.example" && s.allowed == [.push])
    }
}
