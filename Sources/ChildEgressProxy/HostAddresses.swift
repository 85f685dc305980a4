#if canImport(Glibc)
import Glibc
#endif

/// The addresses of this machine's own interfaces (getifaddrs), which the
/// egress policy counts as local: the proxy runs in the host's network
/// namespace, where a connection to the host's public address reaches any
/// service of the host that listens on 0.0.0.0 or `::`.
public enum HostAddresses {
    /// Every IPv4 and IPv6 interface address, read now (interfaces come and go).
    public static func current() -> [IPAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var out: [IPAddress] = []
        var p = list
        while let ifa = p {
            if let sa = ifa.pointee.ifa_addr, let ip = address(sa), !out.contains(ip) { out.append(ip) }
            p = ifa.pointee.ifa_next
        }
        return out
    }

    /// The address in an AF_INET or AF_INET6 sockaddr; nil for another family.
    static func address(_ sa: UnsafeMutablePointer<sockaddr>) -> IPAddress? {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            return IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) })
        case AF_INET6:
            var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            return IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) })
        default:
            return nil
        }
    }
}
