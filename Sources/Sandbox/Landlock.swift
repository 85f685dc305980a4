#if canImport(Glibc)
import Glibc
#endif
import CShims
import Foundation
import RunnerCore

/// Landlock filesystem confinement (unprivileged, stackable LSM). The child
/// applies it to itself; everything it spawns inherits it.
public enum Landlock {
    // Access rights (linux/landlock.h), by the ABI that introduced them.
    static let execute: UInt64 = 1 << 0
    static let writeFile: UInt64 = 1 << 1
    static let readFile: UInt64 = 1 << 2
    static let readDir: UInt64 = 1 << 3
    static let truncate: UInt64 = 1 << 14
    static let ioctlDev: UInt64 = 1 << 15
    static let scopeAbstractUnixSocket: UInt64 = 1 << 0
    static let scopeSignal: UInt64 = 1 << 1
    static let connectTCP: UInt64 = 1 << 1 // LANDLOCK_ACCESS_NET_CONNECT_TCP (ABI 4)

    /// The kernel's Landlock ABI version, or nil when Landlock is unavailable.
    public static func abiVersion() -> Int? {
        let v = cshims_landlock_abi_version()
        return v > 0 ? Int(v) : nil
    }

    /// The ABI, or `sandbox_unavailable` (not retried: every attempt on this
    /// host would fail the same way) when the kernel offers no Landlock.
    public static func required(_ abi: Int?) throws -> Int {
        guard let abi else {
            throw JobFailure(.sandboxUnavailable, "this kernel offers no Landlock (landlock_create_ruleset failed), and "
                + "SANDBOX=enforce never runs a job unconfined. Fix: Linux 5.13 or later with landlock in the LSM list "
                + "(CONFIG_SECURITY_LANDLOCK, the lsm= boot parameter); `agent-runner doctor` checks this")
        }
        return abi
    }

    /// Every filesystem right the given ABI knows.
    static func handledRights(abi: Int) -> UInt64 {
        var rights: UInt64 = (1 << 13) - 1 // ABI 1: EXECUTE … MAKE_SYM
        if abi >= 2 { rights |= 1 << 13 } // REFER
        if abi >= 3 { rights |= truncate }
        if abi >= 5 { rights |= ioctlDev }
        return rights
    }

    /// Rights that make sense on a non-directory.
    static func fileRights(abi: Int) -> UInt64 {
        handledRights(abi: abi) & (execute | writeFile | readFile | truncate | ioctlDev)
    }

    /// What the child may touch.
    public struct Rules: Sendable {
        /// Full access beneath these (the workspace; a local remote repository).
        public var readWrite: [String]
        /// Read and execute beneath these (system paths, CLINE_CMD's directory).
        public var readExecute: [String]
        /// Read and write these device files (e.g. /dev/null).
        public var devices: [String]
        /// Paths inside a read-execute tree that stay unreachable (the runner's
        /// own configuration). Landlock only grants, so the tree above each is
        /// granted entry by entry, leaving the hidden one out.
        public var hidden: [String]
        /// TCP ports the job may connect to (ABI >= 4); nil leaves TCP unrestricted.
        public var connectPorts: [UInt16]?
        public init(readWrite: [String], readExecute: [String], devices: [String], hidden: [String] = [],
                    connectPorts: [UInt16]? = nil) {
            self.readWrite = readWrite
            self.readExecute = readExecute
            self.devices = devices
            self.hidden = hidden
            self.connectPorts = connectPorts
        }

        /// With `whole`, "/proc/self" replaced by "/proc": a /proc that shows
        /// only the job's processes (the job's mount namespace), where each
        /// process's /proc/self is its own entry. Unchanged otherwise (on the
        /// host's /proc, "/proc/self" is the job child's entry only).
        public func withProcfs(whole: Bool) -> Rules {
            guard whole else { return self }
            var rules = self
            rules.readExecute = readExecute.filter { $0 != "/proc/self" && !$0.hasPrefix("/proc/") }
            if readExecute.contains("/proc/self") { rules.readExecute.append("/proc") }
            return rules
        }

        /// `readExecute` with every tree that contains a hidden path replaced
        /// by its entries (recursively down to the hidden path's parent).
        public func expandedReadExecute() -> [String] {
            let hiddenPaths = hidden.map { ($0 as NSString).standardizingPath }
            func expand(_ dir: String) -> [String] {
                guard hiddenPaths.contains(where: { $0.hasPrefix(dir + "/") }) else { return [dir] }
                let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                return entries.sorted().flatMap { name -> [String] in
                    let path = dir == "/" ? "/" + name : dir + "/" + name
                    if hiddenPaths.contains(path) { return [] }
                    var isDir: ObjCBool = false
                    // Never follow a link into a hidden tree: a link is granted as its target would be.
                    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue,
                       (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) == nil {
                        return expand(path)
                    }
                    return [path]
                }
            }
            return readExecute.flatMap { expand(($0 as NSString).standardizingPath) }
        }
    }

    /// Restricts the calling thread (call it before any other thread starts)
    /// and its future children. Read-execute and device paths that do not
    /// exist are skipped; a read-write path that cannot be opened fails with
    /// `internal` (not retried): the job would otherwise run without the
    /// access it needs, or with less confinement than it was given.
    /// Returns the ABI enforced.
    @discardableResult
    public static func enforce(_ rules: Rules) throws -> Int {
        let (ruleset, abi) = try makeRuleset(rules)
        defer { close(ruleset) }
        try checkingNegativeErrno("landlock_restrict_self") { cshims_landlock_restrict_self(ruleset) }
        return abi
    }

    /// The ruleset for `rules`, not yet enforced: its descriptor (close-on-exec;
    /// the caller owns it) and the ABI. `enforce` applies it to the caller; a
    /// spawn applies it to a program just before its execve (`ExecLayers`).
    public static func makeRuleset(_ rules: Rules) throws -> (fd: Int32, abi: Int) {
        let abi = try required(abiVersion())
        let handled = handledRights(abi: abi)
        let scoped = abi >= 6 ? scopeAbstractUnixSocket | scopeSignal : 0
        // A second layer under the network namespace: TCP connects only to the listed ports.
        let handledNet = abi >= 4 && rules.connectPorts != nil ? connectTCP : 0
        let ruleset = try checkingNegativeErrno("landlock_create_ruleset") {
            cshims_landlock_create_ruleset(handled, handledNet, scoped)
        }
        do {
            try addRules(rules, to: ruleset, abi: abi, handled: handled, handledNet: handledNet)
        } catch {
            close(ruleset)
            throw error
        }
        return (ruleset, abi)
    }

    private static func addRules(_ rules: Rules, to ruleset: Int32, abi: Int, handled: UInt64, handledNet: UInt64) throws {
        func add(_ path: String, _ rights: UInt64, required: Bool = false) throws {
            let fd = open(path, cshims_o_path() | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                if required {
                    throw JobFailure(.internal, "the sandbox cannot grant read-write access to \(path): "
                        + "\(String(cString: strerror(e))) (a file:// repository must exist and be reachable)",
                                     retryable: false)
                }
                if e == ENOENT || e == ENOTDIR || e == EACCES { return }
                throw Errno(e, "open \(path)")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw Errno(errno, "fstat \(path)") }
            let isDir = (st.st_mode & S_IFMT) == S_IFDIR
            let allowed = isDir ? rights & handled : rights & fileRights(abi: abi)
            try checkingNegativeErrno("landlock_add_rule \(path)") {
                cshims_landlock_add_path_rule(ruleset, fd, allowed)
            }
        }
        for p in rules.readWrite { try add(p, handled, required: true) }
        for p in rules.expandedReadExecute() { try add(p, execute | readFile | readDir) }
        for p in rules.devices { try add(p, readFile | writeFile | truncate | ioctlDev) }
        if handledNet != 0 {
            for port in rules.connectPorts ?? [] {
                try checkingNegativeErrno("landlock_add_rule port \(port)") {
                    cshims_landlock_add_port_rule(ruleset, UInt64(port), connectTCP)
                }
            }
        }
    }
}
