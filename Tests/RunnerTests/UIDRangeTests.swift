#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import SupervisorKit
import Testing

/// JOB_UID_RANGE: each job child runs as its own uid = gid from the range.
/// Such a uid must be able to execute the child: a build under root's home
/// (mode 0700, as on a fresh Debian machine) is out of its reach, and the job
/// and `doctor` say so instead of blaming the namespaces.
@Suite(.serialized) struct UIDRangeTests: ClineFixtures {
    /// A copy of the freshly built job child in a 0755 folder of the
    /// harness, which every uid reaches wherever the repository was cloned.
    func reachableChild(_ h: Harness) async throws -> String {
        let dir = h.root + "/uid-bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o755)
        let copy = dir + "/agent-runner-job"
        let cp = try await runProcess("/bin/cp", [TestEnv.binDir + "/agent-runner-job", copy])
        try #require(cp.status == 0, "\(cp.stderr)")
        chmod(copy, 0o755)
        let why = ExecuteAccess.problem(path: copy, uid: 61000, gid: 61000)
        try #require(why == nil, "the range's uids must reach the copy (TMPDIR under a 0700 folder?): \(why ?? "")")
        return copy
    }

    /// As root with JOB_UID_RANGE, each child runs as its own uid = gid from
    /// the range, in a workspace it owns; two jobs push to one shared remote.
    @Test func childrenRunAsTheirOwnUidFromTheRange() async throws {
        try #require(geteuid() == 0, "JOB_UID_RANGE needs the tests to run as root")
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        _ = try await runProcess("/bin/chmod", ["-R", "a+rwX", h.remote])
        // Inside its user namespace the agent is uid 0; on the host, what it writes belongs to its own uid.
        let cline = try fakeCline(h, "id -u > uid.txt; id -g > gid.txt; date +%N > n.txt\n"
            + "echo '# normal job' > README.md && echo ok > ok.txt\n")
        let ids = [try await h.seed(tinySpec), try await h.seed(tinySpec, project: "second")]
        let env = ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_UID_RANGE": "61000-61999",
                   "RUNNER_CONCURRENCY": "1", "AGENT_RUNNER_JOB_PATH": try await reachableChild(h)]
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env).status == 0)
        var uids: [Int] = []
        for id in ids {
            let job = try await h.job(id)
            #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
            guard let sha = job["metadata"]?["commitSha"]?.stringValue else { continue }
            #expect(try await Git.run(["-C", h.remote, "show", "\(sha):uid.txt"]) == "0")
            #expect(try await Git.run(["-C", h.remote, "show", "\(sha):gid.txt"]) == "0")
            var st = stat()
            #expect(stat(h.workspace(id) + "/repo/n.txt", &st) == 0)
            let uid = Int(st.st_uid)
            #expect((61000...61999).contains(uid) && Int(st.st_gid) == uid, "n.txt is owned by \(st.st_uid):\(st.st_gid)")
            #expect(stat(h.workspace(id), &st) == 0 && Int(st.st_uid) == uid && Int(st.st_gid) == uid)
            uids.append(uid)
        }
        #expect(uids.count == 2)
    }

    /// A job child the range's uids cannot execute (here: below a 0700
    /// folder): the job fails naming the folder that lacks execute
    /// permission, not the namespaces, and nothing runs; `doctor` says the same.
    @Test func aChildTheRangeCannotReachIsNamedAsTheCause() async throws {
        try #require(geteuid() == 0, "JOB_UID_RANGE needs the tests to run as root")
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let reachable = try await reachableChild(h)
        let hidden = h.root + "/private"
        try FileManager.default.createDirectory(atPath: hidden, withIntermediateDirectories: true)
        chmod(hidden, 0o700)
        let child = hidden + "/agent-runner-job"
        #expect(link(reachable, child) == 0, "hard link: \(errno)")
        let id = try await h.seed(tinySpec)
        let env = ["JOB_UID_RANGE": "61000-61999", "AGENT_RUNNER_JOB_PATH": child]
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: env).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "sandbox_unavailable")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("cannot execute the job child \(child): execute permission on \(hidden) (mode 0700, owner 0:0)"),
                "\(message)")
        #expect(!message.contains("namespaces"), "\(message)")
        let doctor = try await h.agentRunner(["doctor"], env: env)
        let line = doctor.stdout.split(separator: "\n").first { $0.contains("cannot execute the job child") } ?? ""
        #expect(line.hasPrefix("fail") && line.contains("execute permission on \(hidden)"), "\(doctor.stdout)")
        let fine = try await h.agentRunner(["doctor"], env: ["JOB_UID_RANGE": "61000-61999", "AGENT_RUNNER_JOB_PATH": reachable])
        #expect(fine.stdout.contains("ok    JOB_UID_RANGE: uid 61000 can execute the job child \(reachable)"), "\(fine.stdout)")
    }
}
