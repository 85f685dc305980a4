import RunnerCore

/// The proxy variables every agent gets (set by the job child once it has
/// prepared the job's network; empty with JOB_NETWORK=none or host).
public enum AgentNetwork {
    private static let env = Locked<[String: String]>([:])
    public static var environment: [String: String] {
        get { env.withLock { $0 } }
        set { env.withLock { $0 = newValue } }
    }
}
