import CGit2
import RunnerCore

/// The job's egress proxy's answer to the CONNECT that carries the git
/// connection (its HTTP status; 200 opened the tunnel), as the job child's
/// git tunnel saw it.
public struct EgressAnswer: Sendable, Equatable {
    /// host:port asked for.
    public var target: String
    public var status: Int

    public init(target: String, status: Int) {
        self.target = target
        self.status = status
    }
}

extension Publisher {
    /// A failed fetch or push as a job failure, decided by what is known for
    /// certain, never by the text of libgit2's message (which is only quoted):
    /// 1. the credential callback withheld the token from a server it is not
    ///    pinned to: `push_auth_failed`;
    /// 2. the job's egress proxy refused the tunnel (`egress`, its status):
    ///    `push_failed`, not retried when its policy refused (403);
    /// 3. the remote refused every credential offered (the callback gave up),
    ///    or libgit2 says `GIT_EAUTH`: `push_auth_failed`;
    /// 4. TLS (`GIT_ECERTIFICATE`, class `GIT_ERROR_SSL`): `push_failed`;
    /// 5. `GIT_ENONFASTFORWARD`: `push_rejected`;
    /// 6. an HTTP error after the token was offered (the server took the
    ///    credentials, then refused the request: a token without access to
    ///    the repository): `push_auth_failed`;
    /// 7. anything else: `push_failed` (retried).
    static func classify(_ e: GitError, _ state: RemoteCallbackState, pushing: Bool, egress: EgressAnswer?) -> JobFailure {
        let what = pushing ? "push" : "fetch"
        if let pin = state.pinRefusal { return JobFailure(.pushAuthFailed, "push token withheld: " + pin) }
        if let egress, egress.status != 200 {
            let policy = egress.status == 403
            return JobFailure(.pushFailed, "the job's egress proxy refused the connection to \(egress.target) (HTTP "
                + "\(egress.status)" + (policy ? ": its policy does not allow it; JOB_EGRESS_ALLOW can" : ": the remote could not be reached")
                + "); the \(what) did not reach the remote", retryable: !policy)
        }
        if state.authExhausted || e.code == GIT_EAUTH.rawValue {
            return JobFailure(.pushAuthFailed, "authentication to the remote failed: \(e.message)")
        }
        if e.code == GIT_ECERTIFICATE.rawValue || e.klass == Int32(GIT_ERROR_SSL.rawValue) {
            return JobFailure(.pushFailed, "\(what) failed: TLS with the remote failed: \(e.message)")
        }
        if e.code == GIT_ENONFASTFORWARD.rawValue {
            return JobFailure(.pushRejected, "the remote branch moved: \(e.message)")
        }
        if e.klass == Int32(GIT_ERROR_HTTP.rawValue), state.authAttempts > 0 {
            return JobFailure(.pushAuthFailed, "the remote refused the \(what) after the token was offered (a token "
                + "without access to this repository): \(e.message)")
        }
        return JobFailure(.pushFailed, "\(what) failed: \(e.message)")
    }
}
