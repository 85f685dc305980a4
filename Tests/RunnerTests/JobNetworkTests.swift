import Foundation
import RunnerCore
import Testing

/// JOB_NETWORK's other modes, and a host that cannot make the namespaces.
@Suite(.serialized) struct JobNetworkTests {
    func logs(_ job: JSONValue) -> [String] { job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? [] }

    @Test func noneGivesLoopbackOnlyAndHostWarnsInEveryJob() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let none = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["JOB_NETWORK": "none"]).status == 0)
        let host = try await h.seed(tinySpec, project: "second")
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["JOB_NETWORK": "host"]).status == 0)
        let a = try await h.job(none), b = try await h.job(host)
        #expect(a["status"]?.stringValue == "done" && b["status"]?.stringValue == "done")
        #expect(logs(a).contains("network: own namespace, loopback only (JOB_NETWORK=none)"), "\(logs(a))")
        #expect(logs(a).contains { $0.contains("tcp-connect=, seccomp filter (no UDP/raw sockets)") }, "no TCP port is open")
        #expect(logs(b).contains { $0.hasPrefix("WARNING: JOB_NETWORK=host") && $0.contains("UNFILTERED") }, "\(logs(b))")
    }

    /// Where no user namespace can be made, SANDBOX=enforce fails the job with
    /// `sandbox_unavailable`, naming the cause and the fix; it never runs it.
    @Test(.enabled(if: DoctorContainmentTests.canRefuse, "needs root and /usr/bin/unshare with user namespaces"))
    func aHostWithoutNamespacesFailsTheJobNamingTheFix() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let id = try await h.seed(tinySpec)
        let script = "echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\""
        let r = try await runProcess("/usr/bin/unshare", ["--user", "--map-root-user", "/bin/sh", "-c", script, "sh",
                                                          TestEnv.binDir + "/agent-runner", "run", "--exit-when-idle"],
                                     env: h.environment(["JOB_MAX_ATTEMPTS": "1"]), cwd: h.root)
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "failed", "\(job.jsonString)")
        #expect(job["error"]?["code"]?.stringValue == "sandbox_unavailable")
        let message = job["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("cannot create the job's user, PID and network namespaces"))
        #expect(message.contains("user.max_user_namespaces") && message.contains("RestrictNamespaces=user pid net"))
        #expect(!logs(job).contains { $0.hasPrefix("generator ") }, "nothing ran")
    }
}
