import COpenSSL
import ChildHTTP
import Foundation
import RunnerCore

/// Mints a GitHub App installation token for one repository (runs in
/// `agent-runner-job --github-app-token`, never in the supervisor): an RS256
/// JWT from the app's private key, the repository's installation, then (with
/// a `pushUser`) a read-only `metadata` token for that repository that asks
/// GitHub whether the job's user may push to it, and only then an
/// installation token limited to that repository with `contents: write`
/// (and `pull_requests: write` when asked; GitHub gives it an hour at most). Nothing is written anywhere.
public enum GitHubAppToken {
    /// A failure with the HTTP status that refused (0: no answer).
    public struct Failure: Error, CustomStringConvertible {
        public let status: Int
        public let message: String
        public var description: String { status == 0 ? message : "HTTP \(status): \(message)" }
    }

    /// Runs the two API calls; never throws (the reply says what failed).
    public static func mint(_ request: GitHubAppTokenRequest, now: Date = Date()) -> GitHubAppTokenReply {
        do {
            let jwt = try self.jwt(appId: request.appId, privateKeyPEM: request.privateKeyPEM, now: now)
            var base = request.apiURL
            while base.hasSuffix("/") { base.removeLast() }
            let installation = try call("\(base)/repos/\(request.owner)/\(request.repository)/installation", jwt: jwt, body: nil)
            guard let id = installation["id"]?.intValue else {
                throw Failure(status: 0, message: "the installation answer has no id")
            }
            let tokens = "\(base)/app/installations/\(id)/access_tokens"
            if let user = request.pushUser {
                guard GitHubAppTokenRequest.isLogin(user) else {
                    return GitHubAppTokenReply(error: "push permission check: '\(user.prefix(40))' is not a GitHub login")
                }
                if let denied = try pushPermissionDenied(user, request, base: base, tokens: tokens, jwt: jwt) {
                    return GitHubAppTokenReply(error: denied)
                }
            }
            let permissions: JSONValue = request.pullRequests == true
                ? ["contents": "write", "pull_requests": "write"] : ["contents": "write"]
            let body: JSONValue = ["repositories": [.string(request.repository)], "permissions": permissions]
            let token = try call(tokens, jwt: jwt, body: Data(body.jsonString.utf8))
            guard let value = token["token"]?.stringValue, !value.isEmpty else {
                throw Failure(status: 0, message: "the access-token answer has no token")
            }
            return GitHubAppTokenReply(token: value, expiresAt: token["expires_at"]?.stringValue)
        } catch let f as Failure {
            return GitHubAppTokenReply(status: f.status, error: f.message)
        } catch {
            return GitHubAppTokenReply(status: 0, error: "\(error)")
        }
    }

    /// `doctor --online`: what the App (`GET /app`) and each of its
    /// installations (`GET /app/installations`, the first 100) lack of
    /// `GitHubAppTokenRequest.required`; never throws.
    public static func checkPermissions(_ request: GitHubAppTokenRequest, now: Date = Date()) -> GitHubAppTokenReply {
        do {
            let jwt = try self.jwt(appId: request.appId, privateKeyPEM: request.privateKeyPEM, now: now)
            var base = request.apiURL
            while base.hasSuffix("/") { base.removeLast() }
            let needed = GitHubAppTokenRequest.required(pullRequests: request.pullRequests == true)
            func lacking(_ granted: JSONValue?) -> [String] {
                needed.keys.sorted().compactMap { name in
                    let has = granted?[name]?.stringValue
                    return has == needed[name] || has == "write" ? nil : "\(name): \(needed[name]!) (has \(has ?? "none"))"
                }
            }
            var missing = lacking(try call("\(base)/app", jwt: jwt, body: nil)["permissions"]).map { "the App: " + $0 }
            for installation in try call("\(base)/app/installations?per_page=100", jwt: jwt, body: nil).arrayValue ?? [] {
                let who = installation["account"]?["login"]?.stringValue.map { String($0.prefix(40)) } ?? "?"
                missing += lacking(installation["permissions"]).map { "the installation on \(who): " + $0 }
            }
            var reply = GitHubAppTokenReply()
            reply.missing = missing
            return reply
        } catch let f as Failure {
            return GitHubAppTokenReply(status: f.status, error: f.message)
        } catch {
            return GitHubAppTokenReply(status: 0, error: "\(error)")
        }
    }

    /// Why `user` may not push to the repository (nil: they may), asked with
    /// a token that can read the repository's metadata and nothing else:
    /// GitHub's `permission` admin or write (maintain reads as write there),
    /// its `role_name` admin, maintain or write, or `user.permissions.push`.
    static func pushPermissionDenied(_ user: String, _ request: GitHubAppTokenRequest, base: String, tokens: String,
                                     jwt: String) throws -> String? {
        let readOnly: JSONValue = ["repositories": [.string(request.repository)], "permissions": ["metadata": "read"]]
        guard let reader = try call(tokens, jwt: jwt, body: Data(readOnly.jsonString.utf8))["token"]?.stringValue else {
            throw Failure(status: 0, message: "the read-only access-token answer has no token")
        }
        let repo = "\(request.owner)/\(request.repository)"
        let answer: JSONValue
        do {
            answer = try call("\(base)/repos/\(repo)/collaborators/\(user)/permission", jwt: reader, body: nil)
        } catch let f as Failure where f.status == 404 {
            return "push permission check failed: GitHub knows no collaborator \(user) of \(repo) (HTTP 404)"
        } catch let f as Failure {
            throw Failure(status: f.status, message: "push permission check for \(user) on \(repo): \(f.message)")
        }
        let writers = ["admin", "maintain", "write"]
        let permission = answer["permission"]?.stringValue ?? "none"
        if writers.contains(permission) || writers.contains(answer["role_name"]?.stringValue ?? "")
            || answer["user"]?["permissions"]?["push"]?.boolValue == true {
            return nil
        }
        return "push permission check failed: GitHub user \(user) has '\(permission.prefix(20))' on \(repo); "
            + "a push needs admin, maintain or write"
    }

    static func call(_ url: String, jwt: String, body: Data?) throws -> JSONValue {
        let headers = ["Authorization: Bearer \(jwt)", "Accept: application/vnd.github+json",
                       "X-GitHub-Api-Version: 2022-11-28", "User-Agent: agent-runner", "Content-Type: application/json"]
        let response: HTTPResponse
        do {
            response = try CurlEasy().post(url, headers: headers, body: body, connectTimeout: 10, totalTimeout: 30,
                                           maxResponseBytes: 1 << 20)
        } catch let e as CurlError {
            throw Failure(status: 0, message: e.message)
        }
        let json = try? JSONValue.parse(response.body)
        guard (200..<300).contains(response.status), let json else {
            throw Failure(status: response.status, message: json?["message"]?.stringValue ?? "no message")
        }
        return json
    }

    /// The app's JWT: RS256 over `{"iat": now-60, "exp": now+540, "iss": appId}`
    /// (GitHub accepts at most ten minutes; a minute back covers clock drift).
    public static func jwt(appId: String, privateKeyPEM: String, now: Date) throws -> String {
        let t = Int(now.timeIntervalSince1970)
        let header = base64URL(Data(#"{"alg":"RS256","typ":"JWT"}"#.utf8))
        let claims = base64URL(Data(#"{"iat":\#(t - 60),"exp":\#(t + 540),"iss":"\#(appId)"}"#.utf8))
        let input = header + "." + claims
        return input + "." + base64URL(try RSASigner(pem: privateKeyPEM).signSHA256(Data(input.utf8)))
    }

    static func base64URL(_ d: Data) -> String {
        d.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// One RSA private key (owned; freed in deinit) that signs RS256 (PKCS#1 v1.5, SHA-256).
final class RSASigner {
    private let key: OpaquePointer

    init(pem: String) throws {
        let bytes = Array(pem.utf8)
        let bio = bytes.withUnsafeBytes { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        guard let bio else { throw GitHubAppToken.Failure(status: 0, message: "cannot read the private key") }
        defer { BIO_free(bio) }
        guard let k = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
            ERR_clear_error()
            throw GitHubAppToken.Failure(status: 0, message: "GITHUB_APP_PRIVATE_KEY_FILE does not hold a PEM private key")
        }
        guard EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA else {
            EVP_PKEY_free(k)
            throw GitHubAppToken.Failure(status: 0, message: "GITHUB_APP_PRIVATE_KEY_FILE is not an RSA key")
        }
        key = k
    }

    deinit { EVP_PKEY_free(key) }

    func signSHA256(_ data: Data) throws -> Data {
        guard let ctx = EVP_MD_CTX_new() else { throw GitHubAppToken.Failure(status: 0, message: "EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, key) == 1 else {
            throw GitHubAppToken.Failure(status: 0, message: "cannot start an RS256 signature")
        }
        var length = 0
        let bytes = [UInt8](data)
        guard EVP_DigestSign(ctx, nil, &length, bytes, bytes.count) == 1 else {
            throw GitHubAppToken.Failure(status: 0, message: "cannot size the RS256 signature")
        }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(ctx, &signature, &length, bytes, bytes.count) == 1 else {
            throw GitHubAppToken.Failure(status: 0, message: "cannot sign the JWT")
        }
        return Data(signature.prefix(length))
    }
}
