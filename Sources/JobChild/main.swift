// agent-runner-job: runs one job in a confined process. Reads one JSON ticket
// on stdin, writes NDJSON events on stdout, ends with exactly one `result`
// event. It never talks to MongoDB; secrets arrive only in the ticket.
// `agent-runner-job --self-test` instead proves the confinement on this host
// (run by `agent-runner doctor`): see SandboxSelfTest; `--probe` runs the
// doctor's checks of cline, Gemini and libgit2: see ToolProbe; `--github-app-token`
// mints a push token for the supervisor: see GitHubAppTokenMode.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import Sandbox

if CommandLine.arguments.dropFirst().first == "--self-test" { exit(SandboxSelfTest.run()) }
if CommandLine.arguments.dropFirst().first == "--probe" { exit(ToolProbe.run()) }
if CommandLine.arguments.dropFirst().first == "--github-app-token" { exit(GitHubAppTokenMode.run()) }
signal(SIGPIPE, SIG_IGN)
ParentWatch.start()
var input = [UInt8]()
var buffer = [UInt8](repeating: 0, count: 65536)
while true {
    let n = read(0, &buffer, buffer.count)
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { break }
    input += buffer[0..<n]
    if input.count > 64 << 20 { break }
}

let ticket: JobTicket
do {
    ticket = try JSONDecoder().decode(JobTicket.self, from: Data(input))
} catch {
    Emitter(redactor: Redactor()).emit(.failed(JobFailure(.internal, "unreadable ticket: \(error)")))
    exit(0)
}
input = []
let emitter = Emitter(redactor: Redactor(secrets: ticket.secrets.values))
do {
    let meta = try Pipeline(ticket: ticket, out: emitter).run()
    emitter.stage(.finished)
    emitter.emit(.succeeded(meta))
} catch let failure as JobFailure {
    emitter.emit(.failed(failure))
} catch {
    emitter.emit(.failed(JobFailure(.internal, "\(error)")))
}
exit(0)
