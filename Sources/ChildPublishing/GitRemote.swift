import CGit2
import Foundation
import RunnerCore

/// Per-operation state reached from libgit2's C callbacks through `payload`.
final class RemoteCallbackState {
    let token: String?
    /// The one server the token is offered to: the URL libgit2 connects to.
    let tokenURL: URLParts?
    /// Set when a server the token is not pinned to asked for it.
    var pinRefusal: String?
    /// An HTTP proxy for http(s) remotes (the job's egress proxy), or nil.
    var proxyURL: String?
    let maxAuthAttempts: Int
    var authAttempts = 0
    var authExhausted = false
    var rejections: [String] = []

    init(token: String?, tokenURL: URLParts?, maxAuthAttempts: Int) {
        self.token = token
        self.tokenURL = tokenURL
        self.maxAuthAttempts = maxAuthAttempts
    }

    /// Whether the server at `url` (what libgit2 names on a credential
    /// request) is the one the token is pinned to: same scheme, host and port.
    func mayOffer(to url: String?) -> Bool {
        guard let pinned = tokenURL, let url, let asking = URLParts(url) else { return false }
        return asking.scheme == pinned.scheme && asking.host == pinned.host && asking.port == pinned.port
    }
}

/// libgit2 asks for credentials: answer `x-access-token` + the token, a
/// bounded number of times, so a wrong token fails fast instead of looping,
/// and only to the server the token is pinned to (checked on every call).
private let credentialCallback: git_credential_acquire_cb = { out, url, _, allowed, payload in
    let state = Unmanaged<RemoteCallbackState>.fromOpaque(payload!).takeUnretainedValue()
    guard let token = state.token, allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0 else {
        return GIT_PASSTHROUGH.rawValue
    }
    let asking = url.map { String(cString: $0) }
    guard state.mayOffer(to: asking) else {
        let host = asking.flatMap(URLParts.init).map { "\($0.host):\($0.port)" } ?? "an unreadable URL"
        state.pinRefusal = "\(host) asked for credentials; the push token is offered to the remote's own host only"
        git_error_set_str(Int32(GIT_ERROR_NET.rawValue), state.pinRefusal)
        return GIT_EAUTH.rawValue
    }
    state.authAttempts += 1
    if state.authAttempts > state.maxAuthAttempts {
        state.authExhausted = true
        git_error_set_str(Int32(GIT_ERROR_NET.rawValue), "authentication failed after \(state.maxAuthAttempts) attempts")
        return GIT_EAUTH.rawValue
    }
    return git_credential_userpass_plaintext_new(out, "x-access-token", token)
}

/// The server's verdict on each pushed reference; a non-nil status is a rejection.
private let pushUpdateCallback: git_push_update_reference_cb = { refname, status, payload in
    if let status {
        let state = Unmanaged<RemoteCallbackState>.fromOpaque(payload!).takeUnretainedValue()
        state.rejections.append("\(refname.map { String(cString: $0) } ?? "?"): \(String(cString: status))")
    }
    return 0
}

/// Owns one `git_remote *`. The URL it stores never carries credentials.
final class GitRemote {
    private let handle: OpaquePointer
    let state: RemoteCallbackState

    /// Creates remote `name` for `url` in `repo`, fetching `refs/heads/*`.
    /// `tokenURL`: the server `token` is offered to (nil: to none).
    init(repo: GitRepository, name: String, url: String, token: String?, tokenURL: URLParts?,
         maxAuthAttempts: Int = 3) throws {
        var remote: OpaquePointer?
        _ = try repo.withHandle { h in
            try git("add remote", git_remote_create_with_fetchspec(&remote, h, name, url,
                                                                    "+refs/heads/*:refs/remotes/\(name)/*"))
        }
        handle = remote!
        state = RemoteCallbackState(token: token, tokenURL: tokenURL, maxAuthAttempts: maxAuthAttempts)
    }

    deinit { git_remote_free(handle) }

    /// Connects to `url` instead (a local tunnel) without writing it to the
    /// repository's configuration, which keeps the real remote URL.
    func connect(through url: String) throws {
        try git("set instance url", git_remote_set_instance_url(handle, url))
        try git("set instance push url", git_remote_set_instance_pushurl(handle, url))
    }

    private func callbacks() -> git_remote_callbacks {
        var cb = git_remote_callbacks()
        git_remote_init_callbacks(&cb, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
        cb.credentials = credentialCallback
        cb.push_update_reference = pushUpdateCallback
        cb.payload = Unmanaged.passUnretained(state).toOpaque()
        return cb
    }

    /// Fetches exactly `refspecs` (e.g. `+refs/heads/main:refs/remotes/origin/main`).
    /// A branch the remote lacks is not an error: nothing is fetched.
    func fetch(_ refspecs: [String]) throws {
        var opts = git_fetch_options()
        git_fetch_options_init(&opts, UInt32(GIT_FETCH_OPTIONS_VERSION))
        opts.callbacks = callbacks()
        opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE
        // The tracking ref is what the publisher reads; FETCH_HEAD would be one more file per job.
        opts.update_fetchhead = 0
        // A redirect to another host is refused: libgit2 would answer its
        // credential request with the token (naming the first URL to the callback).
        opts.follow_redirects = GIT_REMOTE_REDIRECT_NONE
        _ = try withExtendedLifetime(state) {
            try withProxy { url in
                if let url { opts.proxy_opts.type = GIT_PROXY_SPECIFIED; opts.proxy_opts.url = url }
                return try withStrArray(refspecs) { specs in
                    try git("fetch", git_remote_fetch(handle, specs, &opts, "fetch"))
                }
            }
        }
    }

    /// Pushes `refspec`; rejections reported by the server are collected in
    /// `state.rejections`. The upload alone: the workspace's tracking ref and
    /// its reflog are not updated afterwards (the workspace serves one job;
    /// that update was five more directories and files per job).
    func push(_ refspec: String) throws {
        var opts = git_push_options()
        git_push_options_init(&opts, UInt32(GIT_PUSH_OPTIONS_VERSION))
        opts.callbacks = callbacks()
        opts.follow_redirects = GIT_REMOTE_REDIRECT_NONE
        _ = try withExtendedLifetime(state) {
            try withProxy { url in
                if let url { opts.proxy_opts.type = GIT_PROXY_SPECIFIED; opts.proxy_opts.url = url }
                return try withStrArray([refspec]) { specs in
                    defer { git_remote_disconnect(handle) }
                    return try git("push", git_remote_upload(handle, specs, &opts))
                }
            }
        }
    }

    /// Runs `body` with the egress proxy's URL as a C string (nil: no proxy).
    private func withProxy<T>(_ body: (UnsafePointer<CChar>?) throws -> T) throws -> T {
        guard let url = state.proxyURL else { return try body(nil) }
        return try url.withCString { try body($0) }
    }
}
