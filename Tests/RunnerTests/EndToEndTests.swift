import Foundation
import JobStore
import RunnerCore
import Testing

/// The real pipeline: real server, real supervisor and child binaries, real
/// sandbox, real git remotes.
@Suite(.serialized) struct EndToEndTests {
    @Test func pendingJobEndsDoneWithItsCommitOnTheRemote() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let id = try await h.seed(try TestEnv.exampleSpec("webapp-custom-shape.json"))
        #expect(try await h.job(id)["status"]?.stringValue == "pending")
        let run = try await h.agentRunner(["run", "--exit-when-idle"])
        #expect(run.status == 0, "\(run.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.prettyString)")
        #expect(job["stage"]?.stringValue == "finished")
        #expect(job["attempts"]?.intValue == 1)
        #expect(job["lease"] == nil)
        let head = try await Git.run(["-C", h.remote, "rev-parse", "main"])
        #expect(job["metadata"]?["commitSha"]?.stringValue == head)
        #expect(job["metadata"]?["generator"]?.stringValue == "scaffold")
        #expect(job["metadata"]?["branch"]?.stringValue == "main")
        let message = try await Git.run(["-C", h.remote, "log", "-1", "--format=%B", "main"])
        #expect(message.contains("Architex-Job: \(id)"))
        let tree = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        #expect(tree.contains("README.md") && tree.contains("docker-compose.yml"))
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.contains("landlock ABI") }, "the child must report its sandbox")
        // The project records the success.
        let project = try await h.store.project(job["projectId"]!)
        #expect(project?["jobIds"]?.arrayValue?.contains(.string(id)) == true)
        #expect(project?["lastUpdated"]?.dateValue != nil)
        // The token-free remote URL is all .git/config holds.
        let config = try String(contentsOfFile: h.workspace(id) + "/repo/.git/config", encoding: .utf8)
        #expect(config.contains("file://"))
    }

    @Test func twoJobsRunWithConcurrencyTwoAndTheSecondCommitsOnTop() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let a = try await h.seed(tinySpec, project: "P1")
        let other = h.root + "/other.git"
        try await Git.initBare(other)
        let b = try await h.seed(try TestEnv.exampleSpec("ecommerce-seed-shape.json"), repo: other, project: "P2")
        let run = try await h.agentRunner(["run", "--exit-when-idle", "--concurrency", "2"])
        #expect(run.status == 0, "\(run.stderr)")
        for id in [a, b] { #expect(try await h.job(id)["status"]?.stringValue == "done") }
        // A later job of the same project commits on top of the first.
        let first = try await Git.run(["-C", h.remote, "rev-parse", "main"])
        var changed = tinySpec.objectValue!
        changed["name"] = "Tiny v2"
        let projectId = try await h.job(a)["projectId"]!.stringValue!
        let c = try await h.store.insertJob(projectId: projectId, spec: .object(changed))
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        let job = try await h.job(c)
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["parentSha"]?.stringValue == first)
        let parent = try await Git.run(["-C", h.remote, "rev-parse", "main^"])
        #expect(parent == first)
    }

    @Test func malformedJobFailsAndTheNextStillSucceeds() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let bad = try await h.seed(["nodes": [["id": "a"]], "edges": [["source": "a", "target": "ghost"]]])
        let good = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"])
        #expect(run.status == 0, "\(run.stderr)")
        let failed = try await h.job(bad)
        #expect(failed["status"]?.stringValue == "failed")
        #expect(failed["error"]?["code"]?.stringValue == "invalid_spec")
        #expect(failed["error"]?["message"]?.stringValue?.contains("ghost") == true)
        #expect(failed["error"]?["retryable"]?.boolValue == false)
        #expect(try await h.job(good)["status"]?.stringValue == "done")
    }

    @Test func objectIdAndStringIdsAreBothHandledAndKeptAsTheyAre() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let projectId = try await h.store.insertProject(name: "Ids", repoURL: "file://" + h.remote)
        let oid = ObjectIDText.make()
        _ = try await h.store.insertJob(projectId: projectId, spec: tinySpec, id: ["$oid": .string(oid)])
        let stringId = try await h.store.insertJob(projectId: projectId, spec: tinySpec, id: "job-as-a-string")
        // Two slots, one project: the project lock runs them one after the other.
        let run = try await h.agentRunner(["run", "--exit-when-idle", "--concurrency", "2"])
        #expect(run.status == 0)
        let byOid = try await h.job(oid)
        #expect(byOid["_id"]?["$oid"]?.stringValue == oid, "the ObjectId _id must stay an ObjectId")
        #expect(byOid["status"]?.stringValue == "done")
        let byString = try await h.job(stringId)
        #expect(byString["_id"]?.stringValue == "job-as-a-string")
        #expect(byString["status"]?.stringValue == "done", "\(byString.jsonString)\n\(run.stderr)")
        let project = try await h.store.project(.string(projectId))
        #expect(project?["jobIds"]?.arrayValue?.contains(["$oid": .string(oid)]) == true)
    }

    @Test func childKilledBySignalFailsWithChildCrashed() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let script = h.root + "/crashing-child"
        // Without namespaces: init of a PID namespace cannot SIGKILL itself.
        try "#!/bin/sh\nread -r ticket\nkill -KILL $$\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let id = try await h.seed(tinySpec)
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: ["AGENT_RUNNER_JOB_PATH": script, "JOB_MAX_ATTEMPTS": "1",
                                                "SANDBOX": "off", "JOB_NETWORK": "host"])
        #expect(run.status == 0, "\(run.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "child_crashed")
        #expect(job["error"]?["message"]?.stringValue?.contains("SIGKILL") == true)
    }

    @Test func retryableFailureGoesBackToPendingWithBackoff() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let script = h.root + "/crashing-child"
        try "#!/bin/sh\nexit 3\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["AGENT_RUNNER_JOB_PATH": script]).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "pending")
        #expect(job["error"]?["code"]?.stringValue == "child_crashed")
        #expect(job["error"]?["message"]?.stringValue?.contains("exit code 3") == true)
        // A backoff after the failure (not "later than now": the run may have taken longer than the backoff).
        let failedAt = job["errors"]?.arrayValue?.first?["at"]?.dateValue
        #expect(job["notBefore"]?.dateValue.flatMap { nb in failedAt.map { nb > $0 } } == true, "\(job.jsonString)")
        #expect(job["errors"]?.arrayValue?.count == 1)
    }

    @Test func httpRemoteWithoutTokenIsDoneWithPushSkipped() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let id = try await h.seed(tinySpec, repo: "https://github.com/example/never-pushed.git")
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done")
        #expect(job["metadata"]?["pushSkipped"]?.boolValue == true)
        #expect(job["metadata"]?["pushSkippedReason"]?.stringValue?.contains("GITHUB_TOKEN") == true)
    }

    @Test func badConfigurationExits78NamingTheVariable() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: ["RUNNER_CONCURRENCY": "lots"])
        #expect(r.status == 78)
        #expect(r.stderr.contains("RUNNER_CONCURRENCY"))
    }

    @Test func versionIsPrintedWithoutTouchingTheConfiguration() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let r = try await h.agentRunner(["--version"], env: ["RUNNER_CONCURRENCY": "lots"])
        #expect(r.status == 0, "\(r.stderr)")
        let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line == RunnerVersion.line)
        // The release and the commit this build was made from (scripts/build-commit.sh), or "unknown".
        #expect(line.wholeMatch(of: /\d+\.\d+\.\d+ \(commit ([0-9a-f]{40}(-dirty)?|unknown)\)/) != nil, "\(line)")
        // The job child beside it says the same: one build.
        let child = try await runProcess(TestEnv.binDir + "/agent-runner-job", ["--version"])
        #expect(child.status == 0, "\(child.stderr)")
        #expect(child.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == line)
    }

    @Test func cancelPendingThenRetryThroughTheCommandLine() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let id = try await h.seed(tinySpec)
        let cancel = try await h.agentRunner(["cancel", id])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(try await h.job(id)["status"]?.stringValue == "cancelled")
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        #expect(try await h.job(id)["status"]?.stringValue == "cancelled", "a cancelled job must not run")
        #expect(try await h.agentRunner(["retry", id]).status == 0)
        #expect(try await h.job(id)["status"]?.stringValue == "pending")
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        #expect(try await h.job(id)["status"]?.stringValue == "done")
        let unknown = try await h.agentRunner(["show", "no-such-job"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no job with id no-such-job"))
        let list = try await h.agentRunner(["jobs", "--json"])
        #expect(list.stdout.contains(id))
    }

    @Test func childThatNeverReadsItsTicketDoesNotKillTheSupervisor() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let script = h.root + "/deaf-child"
        try "#!/bin/sh\nexec 0<&-\nsleep 0.2\nexit 4\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        var big = tinySpec.objectValue!
        big["description"] = .string(String(repeating: "x", count: 512 * 1024)) // far beyond a pipe buffer
        let id = try await h.seed(.object(big))
        let run = try await h.agentRunner(["run", "--exit-when-idle"],
                                          env: ["AGENT_RUNNER_JOB_PATH": script, "JOB_MAX_ATTEMPTS": "1"])
        #expect(run.status == 0, "the supervisor must survive EPIPE: \(run.reason) \(run.stderr)")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["message"]?.stringValue?.contains("exit code 4") == true)
    }

    @Test func doctorReportsTheDatabaseAndToolsAndBadArgumentsFailClearly() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        _ = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0) // creates the indexes
        let doctor = try await h.agentRunner(["doctor"])
        for line in ["ok    database reachable", "ok    indexes present", "ok    change stream checked",
                     "ok    libgit2 1.", "ok    free space under"] {
            #expect(doctor.stdout.contains(line), "doctor should print \(line):\n\(doctor.stdout)")
        }
        let bad = try await h.agentRunner(["jobs", "--status", "bogus"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--status must be"))
        #expect(bad.stderr.split(separator: "\n").count == 1, "one line: \(bad.stderr)")
    }

    /// libmongoc makes a /dev/shm/mongoc-<pid> file per process that only a
    /// clean exit removes: a killed supervisor left it behind, and a later
    /// process given that pid printed "Falling back to malloc for counters"
    /// on stderr. The supervisor removes the name as soon as it starts.
    @Test func aKilledSupervisorLeavesNothingInSharedMemory() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let queue = QueueFixture()
        try await h.makeRemote()
        let id = try await h.seed(tinySpec)
        let p = try h.startSupervisor([:])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // The job done: the supervisor's database client is surely up.
        try await queue.waitFor("the job to finish") { try await h.job(id)["status"]?.stringValue == "done" }
        let pid = p.processIdentifier
        kill(pid, SIGKILL)
        p.waitUntilExit()
        #expect(!FileManager.default.fileExists(atPath: "/dev/shm/mongoc-\(pid)"), "/dev/shm/mongoc-\(pid) left behind")
    }
}
