import CGit2

/// What the linked libgit2 is and can do (for `agent-runner doctor`).
public enum GitInfo {
    /// "1.5.1 (https, ssh, threads)".
    public static var description: String {
        var major: Int32 = 0, minor: Int32 = 0, rev: Int32 = 0
        git_libgit2_version(&major, &minor, &rev)
        let f = UInt32(git_libgit2_features())
        var features: [String] = []
        if f & GIT_FEATURE_HTTPS.rawValue != 0 { features.append("https") }
        if f & GIT_FEATURE_SSH.rawValue != 0 { features.append("ssh") }
        if f & GIT_FEATURE_THREADS.rawValue != 0 { features.append("threads") }
        return "\(major).\(minor).\(rev) (\(features.joined(separator: ", ")))"
    }
}
