#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// `agent-runner-job --egress-proxy`: reads one `EgressProxyTicket` line on
/// stdin, listens on its socket, writes `ready`, and serves until stdin
/// closes (the supervisor ends the job or dies). Exit 2: unusable ticket.
public enum ProxyMain {
    public static func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        guard let line = readLine(strippingNewline: true),
              let ticket = try? JSONDecoder().decode(EgressProxyTicket.self, from: Data(line.utf8)) else {
            FileHandle.standardError.write(Data("egress proxy: unreadable ticket on stdin\n".utf8))
            return 2
        }
        let out = EventWriter()
        let listener: Int32
        do {
            listener = try SocketIO.listenUnix(ticket.socketPath, mode: 0o666)
        } catch {
            FileHandle.standardError.write(Data("egress proxy: \(error)\n".utf8))
            return 1
        }
        let server = ProxyServer(ticket: ticket, out: out)
        Thread.detachNewThread { SocketIO.serve(listener) { server.handle($0) } }
        out.emit(EgressEvent(type: "ready", detail: "listening on \(ticket.socketPath)"))
        // Our lifetime is the supervisor's job: stdin closes when it ends.
        var byte: UInt8 = 0
        while true {
            let n = read(0, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
        }
        unlink(ticket.socketPath)
        return 0
    }
}
