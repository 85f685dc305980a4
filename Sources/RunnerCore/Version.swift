/// The release this build is: `agent-runner --version` prints it, and an
/// image built from this tree is tagged with it.
public enum RunnerVersion {
    /// Semantic version of agent-runner and agent-runner-job (shipped together).
    public static let string = "0.9.0"
}
