#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Generation
import Publishing
import RunnerCore
import Sandbox

/// One job, start to finish, inside the confined child.
struct Pipeline {
    let ticket: JobTicket
    let out: Emitter

    var workspace: String { ticket.workspace }
    var inputDir: String { workspace + "/input" }
    var repoDir: String { workspace + "/repo" }

    /// Runs every stage; returns the metadata or throws a `JobFailure`.
    func run() throws -> JobMetadata {
        var timings: [String: Int] = [:]
        var mark = ContinuousClock.now
        func lap(_ name: String) {
            let now = ContinuousClock.now
            let d = (now - mark).components
            timings[name] = Int(d.seconds * 1000 + d.attoseconds / 1_000_000_000_000_000)
            mark = now
        }
        out.stage(.preparing)
        try prepareWorkspace()
        out.log(try confinement().apply())
        let spec = try ArchitectureSpec(json: ticket.architectureSpec, fallbackName: ticket.projectName,
                                        fallbackPrompt: ticket.prompt)
        out.log("architecture '\(spec.name)': \(spec.components.count) components, \(spec.connections.count) connections")
        for note in spec.notes { out.log("catalogue: " + note) }
        try writeInputs(spec)
        lap("sandboxMs")

        out.stage(.generating)
        let generated = try GeneratorChain(ticket: ticket, spec: spec, inputDir: inputDir, repoDir: repoDir,
                                           log: out.log).run()

        lap("generateMs")
        out.stage(.validating)
        let summary = try TreeScanner.scan(repoDir, limits: TreeLimits(ticket.settings))
        guard summary.files.contains("README.md") else {
            throw JobFailure(.validationFailed, "the generated tree has no README.md at its root")
        }
        guard summary.files.count >= 2 else {
            throw JobFailure(.validationFailed, "the generated tree has only README.md; at least one other file is required")
        }
        out.log("validated \(summary.files.count) files, \(summary.bytes) bytes")
        lap("validateMs")

        guard !ParentWatch.orphaned else {
            throw JobFailure(.leaseLost, "the supervisor died; stopping before publishing")
        }
        let s = ticket.settings
        let req = PublishRequest(repoDirectory: repoDir, remoteURL: ticket.repoURL, branch: s.branch,
                                 remoteName: s.remoteName, authorName: s.authorName, authorEmail: s.authorEmail,
                                 jobId: ticket.jobId, projectName: ticket.projectName, token: ticket.secrets.githubToken)
        // Publisher reports `committing` and `pushing` as each begins.
        var meta = try Publisher.publish(req, log: out.log, stage: out.stage)
        meta.generator = generated.generator
        meta.agent = generated.agent
        meta.files = meta.files ?? summary.files.count
        meta.bytes = summary.bytes
        lap("publishMs")
        meta.timings = timings
        return meta
    }

    func prepareWorkspace() throws {
        for dir in [workspace, inputDir, repoDir, workspace + "/home", workspace + "/tmp"] {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw Errno(errno, "mkdir \(dir)") }
        }
        // libgit2 and every tool the child runs look for their config and
        // temporary files here, inside the workspace, not in the host's HOME.
        setenv("HOME", workspace + "/home", 1)
        setenv("XDG_CONFIG_HOME", workspace + "/home/.config", 1)
        setenv("TMPDIR", workspace + "/tmp", 1)
    }

    /// The Landlock rules and limits for this job.
    func confinement() -> Confinement {
        let s = ticket.settings
        var readWrite = [workspace]
        if let url = ticket.repoURL, case .local(let path) = Publisher.kind(of: url) { readWrite.append(path) }
        var readExecute = Confinement.systemPaths + s.sandboxReadPaths
        if s.clineEnabled, let cline = ClineGenerator.resolve(s.clineCommand) {
            readExecute.append((cline as NSString).deletingLastPathComponent)
        }
        return Confinement(rules: .init(readWrite: readWrite, readExecute: readExecute, devices: Confinement.devicePaths,
                                        hidden: s.sandboxHiddenPaths),
                           memoryMB: s.memoryMB, cpuSeconds: s.cpuSeconds,
                           maxWriteMB: s.maxTotalMB + 64, enforced: s.sandboxEnforced)
    }

    func writeInputs(_ spec: ArchitectureSpec) throws {
        let limits = TreeLimits(maxFiles: 3, maxFileBytes: 64 << 20, maxTotalBytes: 192 << 20)
        try TreeWriter(root: inputDir, limits: limits).write([
            ("architecture_spec.json", Array((ticket.architectureSpec.prettyString + "\n").utf8)),
            ("spec.json", Array((spec.normalizedJSON.prettyString + "\n").utf8)),
            ("instructions.md", Array(Instructions.markdown(for: spec).utf8)),
        ])
    }
}
