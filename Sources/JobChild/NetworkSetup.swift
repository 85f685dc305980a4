#if canImport(Glibc)
import Glibc
#endif
import CShims
import ChildEgressProxy
import Foundation
import ChildGeneration
import RunnerCore

/// The job's side of JOB_NETWORK. In its own network namespace (proxy or
/// none) it brings loopback up; with `proxy` it also listens on
/// 127.0.0.1:`ChildSettings.forwarderPort` and forwards every connection to the egress proxy's
/// Unix socket, and points HTTPS_PROXY/HTTP_PROXY (its own libcurl and
/// libgit2, and the agent's) there. Listening happens before confinement;
/// the forwarding thread starts after it.
struct NetworkSetup {
    let settings: ChildSettings
    let socketPath: String
    private(set) var listener: Int32 = -1

    /// The egress proxy's provider route inside the namespace (Cline's base URL), when there is a proxy.
    var providerRoute: String? { proxyURL.map { $0 + EgressProxyTicket.providerPrefix } }

    /// The proxy URL inside the namespace, when there is a proxy.
    var proxyURL: String? { settings.network == .proxy ? "http://127.0.0.1:\(ChildSettings.forwarderPort)" : nil }

    /// The line for the log.
    var summary: String {
        switch settings.network {
        case .proxy: return "network: own namespace; egress only through the job's proxy (\(proxyURL!))"
        case .none: return "network: own namespace, loopback only (JOB_NETWORK=none)"
        case .host: return "WARNING: JOB_NETWORK=host: this job uses the host's network UNFILTERED: it can reach the "
            + "database, internal services and any host (development only, never in production)"
        }
    }

    init(settings: ChildSettings, workspace: String) {
        self.settings = settings
        socketPath = WorkspaceLayout(workspace).egressSocket
    }

    /// Before confinement: loopback up and the forwarder's socket bound.
    mutating func prepare() throws {
        guard settings.network != .host else { return }
        guard AgentReaper.isNamespaceInit else {
            throw JobFailure(.internal, "JOB_NETWORK=\(settings.network.rawValue) but the job child is not in namespaces of its own")
        }
        try checkingNegativeErrno("bring loopback up in the job's network namespace") { cshims_loopback_up() }
        guard settings.network == .proxy else { return }
        listener = try SocketIO.listenLoopback(port: ChildSettings.forwarderPort).fd
        // No NO_PROXY: nothing but the forwarder listens on this namespace's
        // loopback; the provider route answers through the proxy too.
        let env = ["HTTPS_PROXY": proxyURL!, "HTTP_PROXY": proxyURL!, "https_proxy": proxyURL!, "http_proxy": proxyURL!]
        for (k, v) in env { setenv(k, v, 1) }
        AgentNetwork.environment = env
    }

    /// The port of `gitTunnel`, inside the job's namespace.
    static var tunnelPort: Int { ChildSettings.forwarderPort + 1 }

    /// The git remote's tunnel through the egress proxy (`GitTunnel`), for
    /// an http(s) remote under JOB_NETWORK=proxy; nil otherwise. Opened only
    /// after the agent phase; the proxy's policy still decides.
    /// One per job: a resumed checkpoint's fetch, a checkpoint and the
    /// publish share it (its port is bound once).
    func gitTunnel(for remote: String?) throws -> GitTunnel? {
        guard settings.network == .proxy, let url = remote.flatMap({ try? RepositoryRemote($0) })?.http else { return nil }
        return try Self.tunnel.withLock { open in
            if let open { return open }
            let made = try GitTunnel(remote: url, socketPath: socketPath)
            open = made
            return made
        }
    }
    private static let tunnel = Locked<GitTunnel?>(nil)

    /// After confinement: forwards each connection to the egress proxy.
    func startForwarding() {
        guard listener >= 0 else { return }
        let (fd, path) = (listener, socketPath)
        Thread.detachNewThread {
            SocketIO.serve(fd) { client in
                guard let upstream = try? SocketIO.connectUnix(path) else { return }
                SocketIO.relay(client, upstream)
                close(upstream)
            }
        }
    }
}
