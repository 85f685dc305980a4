import ChildEgressProxy
import Foundation
import RunnerCore
import Testing

/// The egress proxy's decisions, before any connect: rules by name, then
/// the resolved addresses (a resolver stands in for DNS, so no lookup and
/// no connection leaves this machine).
@Suite struct EgressPolicyTests {
    func policy(_ rules: String...) -> EgressPolicy { EgressPolicy(rules: rules.compactMap(EgressRule.init)) }
    func resolver(_ table: [String: [String]]) -> (String, Int) -> [IPAddress] {
        { host, _ in (table[host] ?? []).compactMap(IPAddress.init(literal:)) }
    }

    @Test func rulesParseAndMatchByNameAndPort() {
        #expect(EgressRule("api.github.com")?.matches(host: "api.github.com", port: 443, tunnel: true) == true)
        #expect(EgressRule("api.github.com")?.matches(host: "api.github.com", port: 22, tunnel: true) == false)
        #expect(EgressRule("*.googleapis.com")?.matches(host: "generativelanguage.googleapis.com", port: 443, tunnel: true) == true)
        #expect(EgressRule("*.googleapis.com")?.matches(host: "googleapis.com", port: 443, tunnel: true) == false)
        #expect(EgressRule("*.googleapis.com")?.matches(host: "evilgoogleapis.com", port: 443, tunnel: true) == false)
        #expect(EgressRule("127.0.0.1:8080")?.isExact == true)
        #expect(EgressRule("[::1]:8080")?.host == "::1")
        for bad in ["", "host:0", "host:70000", "ho st", "*.", "a..b", "host:", "[::1"] {
            #expect(EgressRule(bad) == nil, "\(bad)")
        }
    }

    @Test func nonPublicAddressesAreRefusedUnlessTheExactHostAndPortIsListed() {
        let p = policy("internal.example", "db.example:27017", "*.example.org")
        let dns = resolver(["internal.example": ["10.0.0.5"], "db.example": ["10.0.0.6"],
                            "rebind.example.org": ["203.0.113.9", "127.0.0.1"], "meta.example.org": ["169.254.169.254"],
                            "v6.example.org": ["::ffff:192.168.1.1"], "ula.example.org": ["fd00::1"],
                            "mc.example.org": ["224.0.0.1"], "zero.example.org": ["0.0.0.0"],
                            "pub.example.org": ["93.184.216.34"]])
        #expect(p.decide(host: "internal.example", port: 443, tunnel: true, resolve: dns) == .deny(.nonPublicAddress, "resolves to 10.0.0.5, a private address"))
        #expect(p.decide(host: "db.example", port: 27017, tunnel: true, resolve: dns) == .allow([IPAddress(literal: "10.0.0.6")!]))
        #expect(p.decide(host: "meta.example.org", port: 80, tunnel: false, resolve: dns) == .deny(.nonPublicAddress, "resolves to 169.254.169.254, a link-local address"))
        for host in ["v6.example.org", "ula.example.org", "mc.example.org", "zero.example.org"] {
            guard case .deny(.nonPublicAddress, _) = p.decide(host: host, port: 443, tunnel: true, resolve: dns) else {
                Issue.record("\(host) must be refused"); continue
            }
        }
        // A name with a public and a loopback answer connects to the public one only.
        #expect(p.decide(host: "rebind.example.org", port: 443, tunnel: true, resolve: dns) == .allow([IPAddress(literal: "203.0.113.9")!]))
        #expect(p.decide(host: "pub.example.org", port: 443, tunnel: true, resolve: dns) == .allow([IPAddress(literal: "93.184.216.34")!]))
        #expect(p.decide(host: "gone.example.org", port: 443, tunnel: true, resolve: dns) == .deny(.unresolvable, "does not resolve"))
        #expect(p.decide(host: "example.com", port: 443, tunnel: true, resolve: dns) == .deny(.notAllowed, "not in JOB_EGRESS_ALLOW"))
        // Literal addresses are names too: only an exact rule opens them.
        #expect(p.decide(host: "169.254.169.254", port: 80, tunnel: false, resolve: dns) == .deny(.notAllowed, "not in JOB_EGRESS_ALLOW"))
        #expect(policy("169.254.169.254").decide(host: "169.254.169.254", port: 80, tunnel: false, resolve: dns)
                == .deny(.nonPublicAddress, "resolves to 169.254.169.254, a link-local address"))
    }

    /// The one derived rule, the git remote's, comes from a document users
    /// write: it allows the name, never a non-public address.
    @Test func theDerivedRemoteRuleNeverOpensANonPublicAddress() {
        let rules = EgressRule.derived(gitRemote: "http://127.0.0.1:27017/repo.git")
        #expect(rules == [EgressRule(host: "127.0.0.1", port: 27017, nameOnly: true)])
        let dns = resolver(["127.0.0.1": ["127.0.0.1"]])
        let p = EgressPolicy(rules: rules)
        // A user's repository URL pointing at the database is never an exact rule.
        #expect(p.decide(host: "127.0.0.1", port: 27017, tunnel: true, resolve: dns)
                == .deny(.nonPublicAddress, "resolves to 127.0.0.1, a loopback address"))
        #expect(EgressRule.derived(gitRemote: nil).isEmpty && EgressRule.derived(gitRemote: "/srv/repo.git").isEmpty)
    }

    @Test func addressKinds() {
        let kinds = ["127.0.0.2": "loopback", "::1": "loopback", "10.1.1.1": "private", "172.16.0.1": "private",
                     "172.32.0.1": "public", "192.168.0.1": "private", "100.64.0.1": "private", "169.254.169.254": "link-local",
                     "fe80::1": "link-local", "fc00::1": "private", "ff02::1": "multicast", "224.1.1.1": "multicast",
                     "0.0.0.0": "unspecified", "::": "unspecified", "::ffff:10.0.0.1": "private", "8.8.8.8": "public",
                     "2606:4700::1111": "public"]
        for (literal, kind) in kinds { #expect(IPAddress(literal: literal)?.kind == kind, "\(literal)") }
    }
}
