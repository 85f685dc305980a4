#if canImport(Glibc)
import Glibc
#endif
import Foundation
import RunnerCore
import Testing

/// The repository URL is a field web users write: it is checked before
/// anything of a job is made (RemotePolicy), and a refused URL fails the job
/// `invalid_remote` naming the rule, with no workspace, proxy or child.
@Suite struct RemoteURLTests {
    func refusal(_ url: String, _ policy: RemotePolicy) -> String? {
        do {
            _ = try policy.check(url)
            return nil
        } catch let f as JobFailure {
            #expect(f.code == .invalidRemote && !f.retryable, "\(f)")
            return f.message
        } catch {
            Issue.record("\(error)")
            return "\(error)"
        }
    }

    @Test func networkURLsAreCheckedBySchemeAndSyntax() {
        let https = RemotePolicy(allowedSchemes: ["https"], localRoots: [], workdirRoot: "/nonexistent/work")
        #expect(refusal("https://github.com/acme/shop.git", https) == nil)
        #expect(refusal("https://127.0.0.1:8443/acme/shop", https) == nil)
        #expect(refusal("https://[::1]:8443/acme/shop", https) == nil)
        #expect(refusal("http://github.com/acme/shop.git", https)?.contains("GIT_ALLOWED_SCHEMES=https") == true)
        #expect(refusal("git@github.com:acme/shop.git", https)?.contains("ssh remotes are not allowed") == true)
        #expect(refusal("ssh://git@github.com/acme/shop.git", https)?.contains("ssh remotes are not allowed") == true)
        let all = RemotePolicy(allowedSchemes: ["https", "http", "ssh"], localRoots: [], workdirRoot: "/nonexistent/work")
        for ok in ["http://github.com/acme/shop.git", "git@github.com:acme/shop.git", "ssh://git@github.com:22/acme/shop.git",
                   "git+ssh://github.com/acme/shop.git", "github.com:acme/shop.git"] {
            #expect(refusal(ok, all) == nil, "\(ok)")
        }
        let refused: [(String, String)] = [
            ("https://user:secret@github.com/acme/shop.git", "credentials"),
            ("https://token@github.com/acme/shop.git", "credentials"),
            ("ssh://git:secret@github.com/acme/shop.git", "credentials"),
            ("https://github.com/acme/shop.git\n", "control"),
            ("https://github.com/acme shop.git", "whitespace"),
            ("https://github.com\u{7F}/acme/shop.git", "control"),
            ("https://gïthub.com/acme/shop.git", "ASCII"),
            ("https://github.com\\@evil.example/x", "backslash"),
            ("https://127.1/acme/shop.git", "host"),
            ("https://0x7f000001/acme/shop.git", "host"),
            ("https://2130706433/acme/shop.git", "host"),
            ("https://github.com./acme/shop.git", "host"),
            ("https://git_hub.com/acme/shop.git", "host"),
            ("https:///acme/shop.git", "host"),
            ("https://[::1/acme/shop.git", "IPv6"),
            ("https://github.com:0/acme/shop.git", "port"),
            ("https://github.com:99999/acme/shop.git", "port"),
            ("https://github.com", "no repository path"),
            ("https://github.com/acme/../victim/shop.git", "'..'"),
            ("https://github.com/acme//shop.git", "segment"),
            ("https://github.com/acme/%2e%2e/shop.git", "percent"),
            ("https://github.com/acme/shop.git?x=1", "query"),
            ("git://github.com/acme/shop.git", "scheme git://"),
            ("ftp://github.com/acme/shop.git", "scheme ftp://"),
            (".", "relative path"),
            ("repo.git", "relative path"),
        ]
        for (url, rule) in refused {
            let message = refusal(url, all) ?? ""
            #expect(message.contains(rule), "\(url.debugDescription): \(message)")
        }
        #expect(refusal(String(repeating: "a", count: 3000), all)?.contains("longer than") == true)
    }

    @Test func aLocalRemoteIsAcceptedOnlyStrictlyBelowARootWithSymlinksResolved() throws {
        let base = TestEnv.tempDir("remote")
        defer { try? FileManager.default.removeItem(atPath: base) }
        let fm = FileManager.default
        for dir in ["roots/git/shop.git", "roots/git/nested/deep.git", "outside/secret.git", "work"] {
            try fm.createDirectory(atPath: base + "/" + dir, withIntermediateDirectories: true)
        }
        // A link below the root that leads out of it, and one that leads to another folder below it.
        try fm.createSymbolicLink(atPath: base + "/roots/git/escape.git", withDestinationPath: base + "/outside/secret.git")
        try fm.createSymbolicLink(atPath: base + "/roots/git/alias.git", withDestinationPath: base + "/roots/git/shop.git")
        try fm.createSymbolicLink(atPath: base + "/linked-root", withDestinationPath: base + "/roots/git")
        try "x".write(toFile: base + "/roots/git/file", atomically: true, encoding: .utf8)
        let root = base + "/roots/git"
        let policy = RemotePolicy(allowedSchemes: ["https"], localRoots: [root], workdirRoot: base + "/work")
        #expect(refusal(root + "/shop.git", policy) == nil)
        #expect(refusal("file://" + root + "/shop.git", policy) == nil)
        #expect(refusal(root + "/nested/deep.git/", policy) == nil)
        #expect(refusal(root + "/alias.git", policy) == nil, "a link that stays below the root")
        #expect(try policy.check("file://" + root + "/shop.git").localPath == root + "/shop.git")
        // Named through a link to the root: what counts is where it resolves.
        #expect(refusal(base + "/linked-root/shop.git", RemotePolicy(allowedSchemes: [], localRoots: [base + "/linked-root"],
                                                                     workdirRoot: base + "/work")) == nil)
        let refused: [(String, String)] = [
            ("/", "the local path is /"),
            ("file:///", "the local path is /"),
            (root, "root itself"),
            (root + "/", "root itself"),
            ("file://" + root, "root itself"),
            (root + "/escape.git", "not below a GIT_LOCAL_REMOTE_ROOTS root"),
            (base + "/outside/secret.git", "not below a GIT_LOCAL_REMOTE_ROOTS root"),
            (root + "/../../outside/secret.git", "'..'"),
            (root + "/./shop.git", "'.'"),
            (root + "/missing.git", "does not exist"),
            (root + "/file", "not a directory"),
            ("file://localhost" + root + "/shop.git", "not a host"),
            ("file://" + root + "/sh%6fp.git", "%"),
            (root + "/shop.git:x", "%, :, ? or #"),
            ("/etc", "not below"),
        ]
        for (url, rule) in refused {
            let message = refusal(url, policy) ?? ""
            #expect(message.contains(rule), "\(url): \(message)")
        }
        let none = RemotePolicy(allowedSchemes: ["https"], localRoots: [], workdirRoot: base + "/work")
        #expect(refusal(root + "/shop.git", none)?.contains("GIT_LOCAL_REMOTE_ROOTS lists no root") == true)
        // A root that holds the workspaces: no remote in them, nor one holding them.
        let wide = RemotePolicy(allowedSchemes: [], localRoots: [base], workdirRoot: base + "/work")
        try fm.createDirectory(atPath: base + "/work/job-1/repo", withIntermediateDirectories: true)
        #expect(refusal(base + "/work/job-1/repo", wide)?.contains("WORKDIR_ROOT") == true)
        #expect(refusal(base + "/work", wide)?.contains("WORKDIR_ROOT") == true)
        #expect(refusal(base + "/roots", RemotePolicy(allowedSchemes: [], localRoots: [base], workdirRoot: base + "/roots/w"))?
            .contains("WORKDIR_ROOT") == true)
    }

    @Test func theRulesAreValidatedAtStart() throws {
        func variable(_ extra: [String: String]) -> String? {
            do {
                _ = try RunnerConfiguration(environment: Harness.minimalConfig.merging(extra) { $1 })
                return nil
            } catch let e as ConfigurationError { return e.variable } catch { return "\(error)" }
        }
        let c = try RunnerConfiguration(environment: Harness.minimalConfig)
        #expect(c.remotePolicy.allowedSchemes == ["https"] && c.remotePolicy.localRoots.isEmpty)
        #expect(c.gitToken.tokenHosts == [TokenHost(host: "github.com")] && c.child.tokenHosts == c.gitToken.tokenHosts)
        for bad in ["file", "ftp", "https,git"] { #expect(variable(["GIT_ALLOWED_SCHEMES": bad]) == "GIT_ALLOWED_SCHEMES") }
        for bad in ["relative", "/", "//", "/srv/../etc", "/srv/./git", "/srv:tmp"] {
            #expect(variable(["GIT_LOCAL_REMOTE_ROOTS": bad]) == "GIT_LOCAL_REMOTE_ROOTS", "\(bad)")
        }
        for bad in ["github.com:0", "https://github.com", "git_hub.com", "[::1", "127.1", "github.com/x"] {
            #expect(variable(["GIT_TOKEN_HOSTS": bad]) == "GIT_TOKEN_HOSTS", "\(bad)")
        }
        let ok = try RunnerConfiguration(environment: Harness.minimalConfig.merging([
            "GIT_ALLOWED_SCHEMES": "https, HTTP,ssh", "GIT_LOCAL_REMOTE_ROOTS": "/srv/git:/var/lib/repos",
            "GIT_TOKEN_HOSTS": "github.com, ghe.example.com:8443,127.0.0.1:9000,[::1]:9001"]) { $1 })
        #expect(ok.remotePolicy.allowedSchemes == ["https", "http", "ssh"])
        #expect(ok.remotePolicy.localRoots == ["/srv/git", "/var/lib/repos"])
        #expect(ok.gitToken.tokenHosts.map(\.description) == ["github.com", "ghe.example.com:8443", "127.0.0.1:9000", "[::1]:9001"])
        // A port-less host is the scheme's own port only.
        let github = TokenHost(host: "github.com")
        #expect(github.matches(URLParts("https://github.com/a/b")!) && github.matches(URLParts("http://github.com/a/b")!))
        #expect(!github.matches(URLParts("https://github.com:8443/a/b")!) && !github.matches(URLParts("https://api.github.com/a/b")!))
        #expect(!github.matches(URLParts("https://github.com.evil.example/a/b")!))
    }

    /// End to end: each refused URL fails its job at once, non-retryable,
    /// naming the rule; the child (a stand-in that records being run) never
    /// starts and no workspace is made.
    @Test func aRefusedURLFailsTheJobBeforeAnythingIsMade() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let marker = h.root + "/child-ran"
        let child = h.root + "/stand-in"
        try "#!/bin/sh\ntouch \(marker)\nexit 1\n".write(toFile: child, atomically: true, encoding: .utf8)
        chmod(child, 0o755)
        try FileManager.default.createSymbolicLink(atPath: h.root + "/to-tmp", withDestinationPath: "/tmp")
        let cases: [(String, String)] = [
            ("/", "the local path is /"), ("file:///", "the local path is /"), (".", "relative path"),
            (h.root, "root itself"), (h.root + "/to-tmp", "not below a GIT_LOCAL_REMOTE_ROOTS root"),
            ("http://github.com/acme/shop.git", "http remotes are not allowed (GIT_ALLOWED_SCHEMES=https"),
            ("https://x-access-token:ghp_abc@github.com/acme/shop.git", "credentials"),
        ]
        var ids: [String] = []
        for (url, _) in cases { ids.append(try await h.seed(tinySpec, repo: url)) }
        let r = try await h.agentRunner(["run", "--exit-when-idle"],
                                        env: ["AGENT_RUNNER_JOB_PATH": child, "GIT_ALLOWED_SCHEMES": "https"])
        #expect(r.status == 0, "\(r.stderr)")
        for (id, (url, rule)) in zip(ids, cases) {
            let job = try await h.job(id)
            #expect(job["status"]?.stringValue == "failed", "\(url): \(job.jsonString)")
            #expect(job["error"]?["code"]?.stringValue == "invalid_remote", "\(url)")
            #expect(job["error"]?["retryable"]?.boolValue == false)
            let message = job["error"]?["message"]?.stringValue ?? ""
            #expect(message.contains(rule), "\(url): \(message)")
            #expect(!message.contains("ghp_abc"), "the refusal does not repeat what the URL held")
            #expect(!FileManager.default.fileExists(atPath: h.workspace(id)), "no workspace for \(url)")
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "no child was started")
        // The valid local remote below the root still runs and pushes.
        let good = try await h.seed(tinySpec)
        #expect(try await h.agentRunner(["run", "--exit-when-idle"]).status == 0)
        let job = try await h.job(good)
        #expect(job["status"]?.stringValue == "done", "\(job.jsonString)")
        #expect(job["metadata"]?["commitSha"]?.stringValue == (try await Git.run(["-C", h.remote, "rev-parse", "main"])))
    }
}

extension RemoteURLTests {
    @Test func doctorReportsTheRulesForURLsAndTokens() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        let run = try await h.agentRunner(["doctor"], env: ["GIT_LOCAL_REMOTE_ROOTS": h.root + ":" + h.root + "/missing",
                                                            "GIT_TOKEN_HOSTS": "github.com,127.0.0.1:9"])
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("warn  repository URLs: GIT_ALLOWED_SCHEMES=https,http; local remotes below \(h.root):\(h.root)/missing "
            + "(GIT_LOCAL_REMOTE_ROOTS); missing: \(h.root)/missing"), "\(run.stdout)")
        #expect(lines.contains("ok    push tokens go to GIT_TOKEN_HOSTS github.com,127.0.0.1:9 only"), "\(run.stdout)")
    }
}
