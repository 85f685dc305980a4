#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// `agent-runner doctor` finds each agent CLI in GENERATORS (through the job
/// child's probe), prints the version its virtualenv holds, and fails when a
/// job could not read the Python that virtualenv was made from.
@Suite struct DoctorAgentsTests {
    @Test func doctorFindsEachAgentWithItsVersionAndChecksItsPython() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let aider = try AgentEndToEndTests.installed("aider", "aider")
        // A virtualenv made from a Python under a home (as pyenv's is): jobs cannot read it.
        let venv = h.root + "/mini-venv"
        try FileManager.default.createDirectory(atPath: venv + "/bin", withIntermediateDirectories: true)
        try "home = /root/.pyenv/versions/3.11.7/bin\n".write(toFile: venv + "/pyvenv.cfg", atomically: true, encoding: .utf8)
        try "#!/bin/sh\n".write(toFile: venv + "/bin/mini", atomically: true, encoding: .utf8)
        chmod(venv + "/bin/mini", 0o755)
        let env = ["GENERATORS": "aider,mini-swe-agent,scaffold", "AIDER_CMD": aider, "MINI_SWE_AGENT_CMD": venv + "/bin/mini",
                   "CLINE_PROVIDER": "openrouter", "CLINE_MODEL": "m", "CLINE_API_KEY": "sk-doctor-test-key-0123456789"]
        let r = try await h.agentRunner(["doctor"], env: env)
        let out = r.stdout.split(separator: "\n").map(String.init)
        #expect(out.contains("ok    aider: \(aider) (aider-chat 0.86.2)"), "\(out)")
        #expect(out.contains("ok    mini-swe-agent: \(venv)/bin/mini"), "\(out)")
        #expect(out.contains("fail  mini-swe-agent: its virtualenv's Python (/root/.pyenv/versions/3.11.7/bin) is outside "
                             + "what a job may read: add it to SANDBOX_READ_PATHS, or make the virtualenv from /usr/bin/python3"), "\(out)")
        #expect(!out.contains { $0.hasPrefix("fail  aider") }, "\(out)")
        #expect(r.status != 0, "a failed check fails the doctor")

        // Named on SANDBOX_READ_PATHS, the Python is readable; a missing agent is a warning.
        let fixed = try await h.agentRunner(["doctor"], env: env.merging([
            "SANDBOX_READ_PATHS": "/root/.pyenv", "MINI_SWE_AGENT_CMD": h.root + "/nothing/mini"]) { $1 })
        let fixedOut = fixed.stdout.split(separator: "\n").map(String.init)
        #expect(fixedOut.contains("warn  mini-swe-agent: '\(h.root)/nothing/mini' not found (MINI_SWE_AGENT_CMD); "
                                  + "jobs fall back to the next generator"), "\(fixedOut)")
        #expect(!fixedOut.contains { $0.hasPrefix("fail  mini-swe-agent") }, "\(fixedOut)")
    }
}
