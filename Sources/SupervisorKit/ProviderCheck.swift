#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import RunnerCore

/// `doctor --online`'s check of the Cline provider, made the way a job makes
/// it: through a real egress proxy (`agent-runner-job --egress-proxy`,
/// `DoctorProxy`) that adds CLINE_API_KEY, asking the provider's model listing once.
public enum ProviderCheck {
    /// The listing path under the provider's base URL, by dialect.
    static func modelsPath(_ kind: ClineProvider.Kind) -> String {
        switch kind {
        case .anthropic: return "/v1/models"
        case .gemini: return "/v1beta/models"
        case .openai, .openrouter, .openaiCompatible: return "/models"
        }
    }

    /// ("ok" or "fail", the line to print). Needs CLINE_PROVIDER and CLINE_API_KEY.
    public static func run(config: RunnerConfiguration) async -> (String, String) {
        guard let provider = config.child.clineProvider else { return ("warn", "cline provider: CLINE_PROVIDER not set") }
        guard config.clineAPIKey != nil else { return ("fail", "cline provider: CLINE_API_KEY not set") }
        let what = "cline provider \(provider.kind.rawValue) at \(provider.upstreamBaseURL)"
        let proxy: DoctorProxy
        do {
            proxy = try await DoctorProxy.start(provider: provider, providerKey: config.clineAPIKey)
        } catch {
            return ("fail", "\(what): the egress proxy did not start: \(error)")
        }
        defer { proxy.stop() }
        let path = EgressProxyTicket.providerPrefix + modelsPath(provider.kind)
        let status = (try? await onDedicatedThread { try Self.get(socket: proxy.socketPath, path: path) }) ?? 0
        switch status {
        case 200..<300: return ("ok", "\(what): the key works through the egress proxy (GET \(modelsPath(provider.kind)) → \(status))")
        case 401, 403: return ("fail", "\(what): the provider refused CLINE_API_KEY (HTTP \(status))")
        case 0: return ("fail", "\(what): no answer through the egress proxy")
        default: return ("fail", "\(what): GET \(modelsPath(provider.kind)) answered HTTP \(status)")
        }
    }

    /// One GET over the proxy's Unix socket; the response status (blocking).
    static func get(socket path: String, path target: String) throws -> Int {
        let fd = try UnixSocket.connect(path)
        defer { close(fd) }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        try writeAll(fd, Array("GET \(target) HTTP/1.1\r\nHost: provider\r\nConnection: close\r\n\r\n".utf8))
        // Up to the end of the status line (a signal does not cut the read short).
        var answer = [UInt8](), buf = [UInt8](repeating: 0, count: 512)
        while answer.firstRange(of: [13, 10]) == nil, answer.count < 8192 {
            let n = try retryingEINTR("read \(path)") { read(fd, &buf, buf.count) }
            if n == 0 { break }
            answer += buf[0..<n]
        }
        let line = String(decoding: answer, as: UTF8.self).split(separator: "\r\n").first ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}

/// An egress proxy of `doctor --online`'s own, in a private temporary folder,
/// made as a job's is: the keys go to it, never to the probe that calls it.
public struct DoctorProxy: Sendable {
    let process: EgressProxyProcess
    let folder: String
    /// The proxy's Unix socket.
    public var socketPath: String { folder + "/egress.sock" }

    /// Starts a proxy with the given routes and no egress rules; its stderr
    /// goes to `logger`, redacted of the keys.
    public static func start(provider: ClineProvider? = nil, providerKey: String? = nil, gemini: GeminiUpstream? = nil,
                             logger: Logger = Logger(label: "agent-runner.doctor")) async throws -> DoctorProxy {
        let folder = NSTemporaryDirectory() + "agent-runner-doctor-\(UUID().uuidString.prefix(8))"
        guard mkdir(folder, 0o700) == 0 else { throw Errno(errno, "mkdir \(folder)") }
        let ticket = EgressProxyTicket(socketPath: folder + "/egress.sock", rules: [], provider: provider,
                                       providerKey: providerKey, gemini: gemini)
        do {
            let redactor = Locked(Redactor(secrets: [providerKey, gemini?.apiKey].compactMap { $0 }))
            return DoctorProxy(process: try await EgressProxyProcess.start(ticket: ticket, logger: logger, redactor: redactor),
                               folder: folder)
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
    }

    /// Ends the proxy and removes its folder.
    public func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: folder)
    }
}
