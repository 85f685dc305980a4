// agent-runner-job: runs one job in a confined process. Reads one JSON ticket
// line on stdin, writes NDJSON events on stdout, ends with exactly one
// `result` event. It never talks to MongoDB. The supervisor keeps stdin open:
// the push token arrives there later, and EOF means the supervisor is gone.
// It is init of its own PID namespace: when it exits, everything the job
// started dies with it.
// `--self-test` proves the confinement on this host (run by `agent-runner
// doctor`): see SandboxSelfTest; `--probe` runs the doctor's checks of cline,
// Gemini and libgit2: see ToolProbe; `--egress-proxy` is one job's egress
// proxy, run by the supervisor outside the job's namespaces: see ProxyMain;
// `--github-app-token` mints a push token for the supervisor: see GitHubAppTokenMode.
// `--version` prints the same line as `agent-runner --version` (RunnerVersion.line).
#if canImport(Glibc)
import Glibc
#endif
import CShims
import ChildEgressProxy
import Foundation
import ChildGeneration
import RunnerCore
import Sandbox

if CommandLine.arguments.dropFirst().first == "--version" { print(RunnerVersion.line); exit(0) }
if CommandLine.arguments.dropFirst().first == "--self-test" { exit(SandboxSelfTest.run()) }
if CommandLine.arguments.dropFirst().first == "--probe" { exit(ToolProbe.run()) }
if CommandLine.arguments.dropFirst().first == "--github-app-token" { exit(GitHubAppTokenMode.run()) }
if CommandLine.arguments.dropFirst().first == "--egress-proxy" { exit(ProxyMain.run()) }
signal(SIGPIPE, SIG_IGN)
if AgentReaper.isNamespaceInit {
    // Init of the job's PID namespace: a stop request ends every process of the job.
    _ = cshims_install_init_sigterm()
} else {
    // No PID namespace (SANDBOX=off where namespaces are unavailable): orphans come to us.
    _ = cshims_set_child_subreaper()
}

let ticket: JobTicket
do {
    guard let line = ChildInput.readTicketLine() else { throw JobFailure(.internal, "no ticket on stdin") }
    ticket = try JSONDecoder().decode(JobTicket.self, from: Data(line))
} catch {
    Emitter(secrets: []).emit(.failed(JobFailure(.internal, "unreadable ticket: \(error)")))
    exit(0)
}
let emitter = Emitter(secrets: ticket.secrets.values, log: ticket.settings.logBounds, eventsMax: ticket.settings.eventsMax)
do {
    let meta = try Pipeline(ticket: ticket, out: emitter).run()
    emitter.stage(.finished)
    emitter.emit(.succeeded(meta))
} catch let failure as JobFailure {
    // A generator stopped by a checkpoint's kill is no failure of its own.
    StopGate.parkIfStopping()
    emitter.emit(.failed(failure))
} catch {
    StopGate.parkIfStopping()
    emitter.emit(.failed(JobFailure(.internal, "\(error)")))
}
AgentReaper.killAll()
exit(0)
