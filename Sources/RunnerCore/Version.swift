import CShims

/// The release this build is: `agent-runner --version` prints it, and an
/// image built from this tree is tagged with it.
public enum RunnerVersion {
    /// Semantic version of agent-runner and agent-runner-job (shipped together).
    public static let string = "0.9.0"
    /// The git commit the binary was built from (40 hex digits, `-dirty` when
    /// the tree had uncommitted changes), or `unknown` for a build without the
    /// generated header (scripts/build-commit.sh, run by `make`).
    public static let commit = String(cString: cshims_build_commit())
    /// What `--version` prints on both executables, and `doctor` shows:
    /// `0.9.0 (commit 1a2b…)`. Two binaries from one build print the same line.
    public static let line = "\(string) (commit \(commit))"
}
