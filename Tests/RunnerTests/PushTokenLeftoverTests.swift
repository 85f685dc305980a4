#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import Testing

/// Without a pids cgroup (here SANDBOX=off and JOB_NETWORK=host: no
/// namespaces, so no cgroup), the push token is still handed over only when
/// no process but the job child is left: the supervisor looks for every
/// process below the child (a subreaper, as the real child is without a PID
/// namespace, so a detached leftover stays below it).
@Suite(.serialized) struct PushTokenLeftoverTests {
    /// A stand-in child that, like the real one, is a child subreaper;
    /// optionally leaves a detached process (double fork, setsid), then asks
    /// for the token and records the line it gets.
    func standIn(_ root: String, leaveProcess: Bool) throws -> String {
        let path = root + "/leftover-child"
        try """
        #!/usr/bin/python3
        import ctypes, json, os, sys
        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        sys.stdin.readline()
        if \(leaveProcess ? "True" : "False"):
            pid = os.fork()
            if pid == 0:
                os.setsid()
                if os.fork() == 0:
                    open("\(root)/leftover.pid", "w").write(str(os.getpid()))
                    null = os.open("/dev/null", os.O_RDWR)
                    for fd in (0, 1, 2):
                        os.dup2(null, fd)
                    os.execv("/bin/sleep", ["sleep", "120"])
                os._exit(0)
            os.waitpid(pid, 0)
        print(json.dumps({"type": "push_token_request"}), flush=True)
        line = sys.stdin.readline()
        open("\(root)/token-line", "w").write(line)
        print(json.dumps({"type": "result", "ok": True, "metadata": {"generator": "fake"}}), flush=True)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    @Test(arguments: [false, true])
    func theTokenWaitsForEveryProcessBelowTheChild(leaveProcess: Bool) async throws {
        let tests = PushTokenTests()
        let w = try await tests.world()
        defer { w.stop() }
        defer {
            if let text = try? String(contentsOfFile: w.h.root + "/leftover.pid", encoding: .utf8), let pid = pid_t(text) {
                kill(pid, SIGKILL)
            }
        }
        let id = try await tests.appJob(w)
        try await tests.run(w, ["SANDBOX": "off", "JOB_NETWORK": "host", "GITHUB_TOKEN": PushTokenTests.token,
                                "AGENT_RUNNER_JOB_PATH": try standIn(w.h.root, leaveProcess: leaveProcess)])
        let job = try await w.h.job(id)
        let line = (try? String(contentsOfFile: w.h.root + "/token-line", encoding: .utf8)) ?? ""
        if leaveProcess {
            #expect(FileManager.default.fileExists(atPath: w.h.root + "/leftover.pid"), "the stand-in left its process")
            #expect(!line.contains(PushTokenTests.token), "no token while a process of the job runs")
            #expect(job["status"]?.stringValue == "failed")
            #expect(job["error"]?["code"]?.stringValue == "sandbox_violation", "\(job["error"]?.jsonString ?? "")")
            #expect(job["logs"]?.jsonString.contains("push token withheld: 1 process(es)") == true)
        } else {
            #expect(line.contains(PushTokenTests.token), "nothing left: the token is handed over")
            #expect(job["status"]?.stringValue == "done", "\(job["error"]?.jsonString ?? "")")
        }
    }
}
