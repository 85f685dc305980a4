import Foundation
@testable import JobStore
import RunnerCore
import Testing

/// Issue 12: a hostile agent inside the real sandbox (namespaces, egress
/// proxy, Landlock, seccomp) is refused every way out, never sees a key,
/// cannot outlive its job, and the next job runs normally.
@Suite(.serialized) struct ContainmentTests {
    static let realKey = "sk-real-provider-key-" + "0123456789abcdefghij"

    @Test func hostileAgentIsRefusedEverywhereAndTheNextJobSucceeds() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let serviceLog = h.root + "/service.log"
        let service = try await FixtureServer("tcp_listener.py", [serviceLog])
        defer { service.stop() }
        let provider = try await FixtureServer("fake_provider.py", ["ok", h.root + "/provider.jsonl"])
        defer { provider.stop() }
        let marker = "agent-runner-escapee-" + UUID().uuidString
        // Host Unix sockets outside the workspace, where a job would see them without a mount namespace.
        let sockets = [h.root + "/host.sock", "/run/agent-runner-test-\(UUID().uuidString.prefix(8)).sock"]
        let listeners = try sockets.map { try UnixSocket.listen($0, mode: 0o777) }
        defer { for (fd, path) in zip(listeners, sockets) { close(fd); unlink(path) } }
        let unix = sockets.map { "\"\($0)\"" }.joined(separator: ", ")
        let targets = "{\"db\": \(Containment.databasePort), \"service\": \(service.port), \"marker\": \"\(marker)\", "
            + "\"unix\": [\(unix)]}"
        var hostile = tinySpec.objectValue!
        hostile["description"] = .string(targets)
        // A document the agent would love to change.
        let sentinel: JSONValue = ["_id": "sentinel", "status": "done", "logs": ["untouched"], "projectId": "elsewhere"]
        try await h.store.pool.run("jobs") { try CollectionOps.insert($0, sentinel) }
        let id = try await h.seed(.object(hostile))
        let agent = try Containment.install("hostile_agent.py", in: h.root)
        let metricsPort = freePort()
        let p = try h.startSupervisor([
            "CLINE_CMD": agent, "CLINE_ENABLED": "true", "GENERATORS": "cline", "JOB_MAX_ATTEMPTS": "1",
            "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_API_KEY": Self.realKey,
            "METRICS_ADDR": "127.0.0.1:\(metricsPort)", "JOB_EGRESS_ALLOW": "localhost"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let finished = try await eventually(60) { try await h.job(id)["status"]?.stringValue == "done" }
        let job = try await h.job(id)
        #expect(finished, "\(job.jsonString)")
        let sha = try #require(job["metadata"]?["commitSha"]?.stringValue)
        let attacks = try JSONValue.parse(try await Git.run(["-C", h.remote, "show", "\(sha):attacks.json"]))
        func result(_ k: String) -> String { attacks[k]?.stringValue ?? "missing" }
        // Straight to loopback services: nothing listens in the job's own namespace, and Landlock refuses anyway.
        #expect(result("db_direct").hasPrefix("refused"), "\(result("db_direct"))")
        #expect(result("service_direct").hasPrefix("refused"), "\(result("service_direct"))")
        // Through the proxy: refused by its policy before any connect.
        for k in ["proxy_private", "proxy_metadata", "proxy_metadata_http", "proxy_not_allowed", "proxy_loopback_db",
                  "proxy_localhost_service", "proxy_allowed_name_loopback"] {
            #expect(result(k).hasPrefix("HTTP/1.1 403"), "\(k): \(result(k))")
        }
        // No host Unix socket: neither the test's (under /tmp and /run) nor the journal's.
        for k in ["unix_0", "unix_1", "journal"] { #expect(result(k).hasPrefix("refused"), "\(k): \(result(k))") }
        for fd in listeners { #expect(Containment.pendingConnection(fd) == false, "a host socket was reached") }
        // No UDP (so no DNS of its own), no raw or packet sockets.
        for k in ["udp", "udp6", "raw", "packet"] { #expect(result(k).hasPrefix("refused"), "\(k): \(result(k))") }
        // No key anywhere it could read.
        let evidence = try await Git.run(["-C", h.remote, "show", "\(sha):evidence.txt"])
        #expect(evidence.count > 1000 && !evidence.contains(Self.realKey))
        #expect(!job.jsonString.contains(Self.realKey))
        // The refusals are in the job's log and counted by reason.
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(logs.contains("egress denied: 10.1.2.3:80 (not in JOB_EGRESS_ALLOW)"), "\(logs)")
        #expect(logs.contains("egress denied: localhost:443 (resolves to 127.0.0.1, a loopback address)"))
        #expect(logs.contains { $0.hasPrefix("egress denied: 169.254.169.254:80 (") })
        #expect(logs.contains("egress denied: example.com:443 (not in JOB_EGRESS_ALLOW)"))
        #expect(logs.contains { $0.hasPrefix("egress denied: 127.0.0.1:\(Containment.databasePort) (") })
        let metrics = try await httpRequest("http://127.0.0.1:\(metricsPort)/metrics")
        #expect(metrics.body.contains("agent_runner_egress_denied_total{reason=\"not_allowed\"}"), "\(metrics.body)")
        #expect(metrics.body.contains("agent_runner_egress_denied_total{reason=\"non_public_address\"}"))
        // Nothing reached the loopback service; no document changed but the job's own.
        #expect(!FileManager.default.fileExists(atPath: serviceLog))
        #expect(try await h.job("sentinel") == sentinel)
        let all = try await h.store.pool.run("jobs") { try CollectionOps.find($0, filter: [:]) }
        #expect(!all.contains { $0.jsonString.contains("pwned") })
        // Its detached grandchild died with the job.
        #expect(await eventually(5) { Containment.processes(with: marker).isEmpty })
        // The next normal job runs.
        let next = try await h.seed(tinySpec, project: "after the attack")
        _ = try await h.store.pool.run("jobs") { coll in
            try CollectionOps.update(coll, filter: ["_id": .string(next)], update: ["$set": ["priority": 5]])
        }
        #expect(try await eventually(60) { try await h.job(next)["status"]?.stringValue != "pending" })
        p.terminate()
        _ = await eventually(30) { !p.isRunning }
        let after = try await h.job(next)
        #expect(after["status"]?.stringValue == "done", "\(after.jsonString)")
    }

    /// A real-shaped Cline 3.x run end to end through the supervisor: its
    /// provider calls go through the job's egress proxy, which swaps the
    /// placeholder key for the real one; the agent never holds the real one.
    @Test func clineRunsThroughTheProxyWithTheRealKeyInjected() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let rig = try await ClineRig(h, mode: "v3")
        defer { rig.stop() }
        let requests = rig.requests
        let id = try await h.seed(tinySpec)
        let r = try await h.agentRunner(["run", "--exit-when-idle"], env: rig.env(model: "test-model-1", attempts: 1))
        #expect(r.status == 0)
        #expect(!r.stderr.contains(Self.realKey))
        let job = try await h.job(id)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(job["metadata"]?["generator"]?.stringValue == "cline")
        #expect(job["metadata"]?["agent"]?["model"]?.stringValue == "test-model-1")
        let seen = try FixtureServer.jsonLines(requests)
        #expect(!seen.isEmpty)
        for request in seen {
            #expect(request["path"]?.stringValue == "/v1/chat/completions")
            #expect(request["headers"]?["authorization"]?.stringValue == "Bearer " + Self.realKey, "\(request)")
        }
        #expect(!job.jsonString.contains(Self.realKey))
        let logs = job["logs"]?.arrayValue?.compactMap(\.stringValue) ?? []
        // Each call is metered from the answer (chat completions: 900 prompt tokens, 512 of them cached, 210 out);
        // the model has no price, so its cost is unknown, never 0.
        #expect(logs.contains { $0.hasPrefix("model call: provider: POST /chat/completions: test-model-1 -> 200, tokens in 388 out 210 "
            + "cache read 512 write 0, cost unknown") }, "\(logs)")
        let usage = try #require(job["metadata"]?["usage"], "\(job.jsonString)")
        #expect(usage["requests"]?.intValue == Int64(seen.count) && usage["inputTokens"]?.intValue == Int64(388 * seen.count))
        #expect(usage["outputTokens"]?.intValue == Int64(210 * seen.count) && usage["cacheReadTokens"]?.intValue == Int64(512 * seen.count))
        #expect(usage["cost"] == .null && usage["byModel"]?["test-model-1"]?["requests"]?.intValue == Int64(seen.count), "\(usage)")
        #expect(logs.contains { $0.hasPrefix("usage: \(seen.count) model call(s), tokens in \(388 * seen.count)") }, "\(logs)")
        // What the agent left behind holds only the placeholder.
        let files = try await Git.run(["-C", h.remote, "ls-tree", "-r", "--name-only", "main"])
        for f in files.split(separator: "\n") {
            #expect(!(try await Git.run(["-C", h.remote, "show", "main:\(f)"])).contains(Self.realKey))
        }
        let config = try String(contentsOfFile: h.workspace(id) + "/home/.cline/data/settings/providers.json", encoding: .utf8)
        #expect(config.contains(ClineProvider.placeholderKey) && !config.contains(Self.realKey))
    }
}

/// `doctor --online` asks the Cline provider once, through a real egress
/// proxy that adds the key; a refused key fails the check.
@Suite(.serialized) struct ProviderCheckTests {
    @Test(arguments: [("ok", "ok    cline provider"), ("badkey", "fail  cline provider")])
    func doctorOnlineAsksTheProviderThroughTheProxy(_ scenario: String, _ prefix: String) async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let log = h.root + "/provider.jsonl"
        let provider = try await FixtureServer("fake_provider.py", [scenario, log])
        defer { provider.stop() }
        let r = try await h.agentRunner(["doctor", "--online"], env: [
            "GENERATORS": "cline,scaffold", "CLINE_ENABLED": "true", "CLINE_CMD": "/bin/true",
            "CLINE_PROVIDER": "http://127.0.0.1:\(provider.port)/v1", "CLINE_API_KEY": ContainmentTests.realKey])
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }
        #expect(line != nil, "\(r.stdout)")
        if scenario == "badkey" { #expect(r.status != 0, "a refused key fails doctor") }
        let seen = try FixtureServer.jsonLines(log)
        #expect(seen.count == 1 && seen.first?["path"]?.stringValue == "/v1/models")
        #expect(seen.first?["headers"]?["authorization"]?.stringValue == "Bearer " + ContainmentTests.realKey)
        #expect(!r.stdout.contains(ContainmentTests.realKey) && !r.stderr.contains(ContainmentTests.realKey))
    }
}
