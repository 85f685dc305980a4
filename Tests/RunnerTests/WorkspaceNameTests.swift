import Foundation
import RunnerCore
import Testing

/// Workspace folder names (issue 13, item 6): distinct job ids never share a
/// workspace.
@Suite struct WorkspaceNameTests {
    @Test func sha256MatchesTheStandardVectors() {
        let hex = { (b: [UInt8]) in b.map { String(format: "%02x", $0) }.joined() }
        #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // Two blocks of padding.
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(hex(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func idsThatLookAlikeGetDistinctReadableNames() {
        #expect(WorkspaceName.of("a.b") != WorkspaceName.of("a_b"))
        #expect(WorkspaceName.of("a/b") != WorkspaceName.of("a_b"))
        let base = String(repeating: "x", count: 120)
        #expect(WorkspaceName.of(base + "1") != WorkspaceName.of(base + "2"))
        let name = WorkspaceName.of("65f0c2d1e4b0a1b2c3d4e5f6")
        #expect(name.hasPrefix("65f0c2d1e4b0a1b2c3d4e5f6-"))
        for id in ["a.b", "../..", "", base, "ümlaut id"] {
            let n = WorkspaceName.of(id)
            #expect(n.count <= 81 && !n.isEmpty && n != "." && n != "..")
            #expect(n.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") })
        }
    }

    /// Two real jobs `a.b` and `a_b`: each keeps its own workspace.
    @Test func jobsAdotBAndAunderscoreBKeepSeparateWorkspaces() async throws {
        let h = try Harness()
        defer { h.cleanup() }
        try await h.makeRemote()
        let projectId = try await h.store.insertProject(name: "Look-alikes", repoURL: "file://" + h.remote)
        for id in ["a.b", "a_b"] { _ = try await h.store.insertJob(projectId: projectId, spec: tinySpec, id: .string(id)) }
        let run = try await h.agentRunner(["run", "--exit-when-idle", "--concurrency", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        for id in ["a.b", "a_b"] {
            #expect(try await h.job(id)["status"]?.stringValue == "done")
            #expect(FileManager.default.fileExists(atPath: h.workspace(id) + "/repo/README.md"), "workspace of \(id)")
        }
        let folders = try FileManager.default.contentsOfDirectory(atPath: h.workdir)
        #expect(folders.count == 2, "\(folders)")
    }
}
