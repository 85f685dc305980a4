#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JobStore
import RunnerCore
import Testing

/// The job's own mount namespace and the agent's own Landlock layer, through
/// the real supervisor, job child and sandbox: agents (Python, Node) read
/// their own /proc/self and see only their job's processes, and cannot write
/// the local git remote that the publisher then pushes to.
@Suite(.serialized) struct MountNamespaceTests {
    /// A fake `cline` that runs `body` (a shell script) in repo/, then writes
    /// a README so the job succeeds.
    func agent(_ h: Harness, _ body: String) throws -> String {
        let dir = h.root + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/cline"
        try "#!/bin/sh\n\(body)\necho '# probed' > README.md && echo ok > main.txt\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    /// Runs one job with `cline` as its agent; returns the job and the
    /// committed `probe.json` it wrote.
    func run(_ h: Harness, _ cline: String, env extra: [String: String] = [:]) async throws -> (JSONValue, JSONValue) {
        try await h.makeRemote()
        let id = try await h.seed(tinySpec)
        let env = ["CLINE_CMD": cline, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "1"]
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: env.merging(extra) { $1 })
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        let sha = try #require(job["metadata"]?["commitSha"]?.stringValue, "\(job.jsonString)")
        return (job, try JSONValue.parse(try await Git.run(["-C", h.remote, "show", "\(sha):probe.json"])))
    }

    @Test func nodeAgentReadsItsOwnMemoryUsageAndProcSelfStatus() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try agent(h, #"""
        node - <<'JS'
        const fs = require("fs");
        const r = {};
        try { r.rss = process.memoryUsage().rss; } catch (e) { r.rss = "error: " + e.code; }
        try { r.status = fs.readFileSync("/proc/self/status", "utf8").split("\n")[0]; } catch (e) { r.status = "error: " + e.code; }
        fs.writeFileSync("probe.json", JSON.stringify(r));
        JS
        """#)
        let (job, probe) = try await run(h, cline)
        #expect((probe["rss"]?.intValue ?? 0) > 0, "process.memoryUsage(): \(probe.jsonString)")
        #expect(probe["status"]?.stringValue == "Name:\tnode", "\(probe.jsonString)")
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains { $0.hasPrefix("sandbox: ") && $0.contains("own mount namespace") }, "\(logs)")
    }

    @Test func pythonAgentSeesItsOwnProcSelfAndOnlyItsJobsProcesses() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try agent(h, #"""
        python3 - <<'PY'
        import json, os
        r = {"me": os.getpid()}
        def attempt(key, f):
            try:
                r[key] = f()
            except OSError as e:
                r[key] = "error: " + (e.strerror or str(e))
        attempt("status", lambda: open("/proc/self/status").read().split("\n")[0])
        attempt("pids", lambda: sorted(int(n) for n in os.listdir("/proc") if n.isdigit()))
        attempt("init", lambda: open("/proc/1/comm").read().strip())
        json.dump(r, open("probe.json", "w"))
        PY
        """#)
        let (_, probe) = try await run(h, cline)
        #expect(probe["status"]?.stringValue == "Name:\tpython3", "\(probe.jsonString)")
        let listed = probe["pids"]?.arrayValue?.compactMap { $0.intValue }
        let pids = try #require(listed, "\(probe.jsonString)")
        let me = try #require(probe["me"]?.intValue)
        // Only the job: its child (init, pid 1), the shell, python itself (and nothing of the host's).
        #expect(pids.contains(1) && pids.contains(Int64(me)), "\(pids)")
        #expect(pids.count <= 6 && pids.allSatisfy { $0 < 100 }, "\(pids)")
        #expect(probe["init"]?.stringValue?.hasPrefix("agent-runner") == true, "\(probe.jsonString)")
    }

    /// The job child may write the local bare remote (its publisher pushes
    /// there after the agent phase); the agent's own layer leaves it out.
    @Test func agentCannotWriteTheLocalRemoteWhileThePublishSucceeds() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let cline = try agent(h, """
        python3 - <<'PY'
        import json, os
        r = {}
        for key, path in [("hook", "\(h.remote)/hooks/post-update"), ("ref", "\(h.remote)/refs/heads/pwned"),
                          ("object", "\(h.remote)/objects/pwned")]:
            try:
                with open(path, "w") as f:
                    f.write("pwned\\n")
                r[key] = "written"
            except OSError as e:
                r[key] = "refused: " + (e.strerror or str(e))
        json.dump(r, open("probe.json", "w"))
        PY
        """)
        let (job, probe) = try await run(h, cline)
        for key in ["hook", "ref", "object"] {
            #expect(probe[key]?.stringValue?.hasPrefix("refused") == true, "\(key): \(probe.jsonString)")
        }
        for path in ["hooks/post-update", "refs/heads/pwned", "objects/pwned"] {
            #expect(!FileManager.default.fileExists(atPath: h.remote + "/" + path), "\(path)")
        }
        let head = try await Git.run(["-C", h.remote, "rev-parse", "main"])
        #expect(head == job["metadata"]?["commitSha"]?.stringValue)
    }
}
