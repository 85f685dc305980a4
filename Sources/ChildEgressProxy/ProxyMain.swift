#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore

/// `agent-runner-job --egress-proxy`: reads one `EgressProxyTicket` line on
/// stdin, listens on its socket, writes `ready`, and serves until stdin
/// closes (the supervisor ends the job or dies). Exit 2: unusable ticket.
public enum ProxyMain {
    /// The proxy's memory limit (RLIMIT_DATA: heap, anonymous mappings and
    /// thread stacks), set on itself before it reads anything. What it holds
    /// is bounded well below it: 8 keyed requests' bodies of at most 16 MiB
    /// each (`ProxyServer.keyedRequestLimit`), 64 connection threads with
    /// 1 MiB stacks (`SocketIO.threadStackSize`) and 32 KiB relay buffers;
    /// plain HTTP and tunnels stream.
    public static let dataLimit: rlim_t = 768 << 20

    public static func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let data = __rlimit_resource_t(RLIMIT_DATA.rawValue)
        var limit = rlimit()
        getrlimit(data, &limit)
        // Never above an existing hard limit (raising one needs privilege).
        limit.rlim_max = min(limit.rlim_max, dataLimit)
        limit.rlim_cur = limit.rlim_max
        if setrlimit(data, &limit) != 0 {
            FileHandle.standardError.write(Data("egress proxy: cannot set its memory limit: \(Errno(errno, "setrlimit"))\n".utf8))
            return 1
        }
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
        out.emit(EgressEvent(.ready, detail: "listening on \(ticket.socketPath)"))
        // Our lifetime is the supervisor's job: stdin closes when it ends.
        // Meanwhile it answers the `usage` events when daily budgets apply.
        var pending: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(0, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += buf[0..<n]
            while let nl = pending.firstIndex(of: 0x0A) {
                let line = Data(pending[..<nl])
                pending.removeSubrange(...nl)
                if let answer = try? JSONDecoder().decode(SharedSpendAnswer.self, from: line) { server.meter.shared?.answer(answer) }
            }
            if pending.count > 1 << 16 { pending.removeAll() }
        }
        unlink(ticket.socketPath)
        return 0
    }
}
