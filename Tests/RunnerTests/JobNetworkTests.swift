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

    /// Under JOB_NETWORK=proxy, a job that needs no egress (the scaffold
    /// generator, a local remote) gets no egress proxy: it runs as with
    /// JOB_NETWORK=none, and says so in its log. Its Landlock rules allow no
    /// TCP connect at all.
    @Test func aJobThatNeedsNoEgressRunsWithoutAProxyAndLoopbackOnly() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"], env: ["JOB_NETWORK": "proxy"]).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(logs(job).contains { $0.hasPrefix("network: this job needs no egress") }, "\(logs(job))")
        #expect(logs(job).contains("network: own namespace, loopback only (JOB_NETWORK=none)"), "\(logs(job))")
        #expect(logs(job).contains { $0.contains("tcp-connect=, seccomp filter (no UDP/raw sockets)") }, "no TCP port is open")
        #expect(!logs(job).contains { $0.contains("egress only through the job's proxy") })
    }

    /// Such a job is still in a network namespace of its own: a stand-in
    /// child in its place cannot reach a service on the host's loopback, and
    /// no egress proxy socket exists in its workspace.
    @Test func aJobWithoutAProxyStillCannotReachLoopbackServices() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let serviceLog = h.root + "/service.log"
        let service = try await FixtureServer("tcp_listener.py", [serviceLog])
        defer { service.stop() }
        let script = TestEnv.fixtures + "/network_probe_child.py"
        let out = h.root + "/probe.json"
        let hostNet = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        let child = h.root + "/probe-child"
        try "#!/bin/sh\nexec /usr/bin/python3 \(script) \(service.port) \(out) '\(hostNet)'\n"
            .write(toFile: child, atomically: true, encoding: .utf8)
        chmod(child, 0o755)
        let id = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["JOB_NETWORK": "proxy", "AGENT_RUNNER_JOB_PATH": child]).status == 0)
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        let probe = try JSONValue.parse(try String(contentsOfFile: out, encoding: .utf8))
        #expect(probe["network"]?.stringValue == "none", "\(probe.jsonString)")
        #expect(probe["own_netns"] == .bool(true), "\(probe.jsonString)")
        #expect(probe["connect"]?.stringValue?.hasPrefix("refused") == true, "\(probe.jsonString)")
        #expect(probe["egress_socket"] == .bool(false), "no egress proxy was started")
        #expect(!FileManager.default.fileExists(atPath: serviceLog), "nothing reached the loopback service")
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
