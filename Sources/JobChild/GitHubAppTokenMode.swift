import Foundation
import ChildGeneration
import RunnerCore

/// `--github-app-token` (see GitHubAppTokenRequest): reads the request on
/// stdin, prints the reply as one JSON line. The supervisor runs it for
/// GIT_TOKEN_SOURCE=github-app, so that it does not link libcurl.
/// Returns the exit status (2 for an unreadable request).
enum GitHubAppTokenMode {
    static func run() -> Int32 {
        let input = FileHandle.standardInput.readDataToEndOfFile()
        guard let request = try? JSONDecoder().decode(GitHubAppTokenRequest.self, from: input) else {
            FileHandle.standardError.write(Data("agent-runner-job --github-app-token: unreadable request on stdin\n".utf8))
            return 2
        }
        var reply = request.checkPermissions == true ? GitHubAppToken.checkPermissions(request) : GitHubAppToken.mint(request)
        // GitHub's messages never hold the key; redact it all the same.
        reply.error = reply.error.map { Redactor(secrets: [request.privateKeyPEM]).redact($0) }
        guard let data = try? JSONEncoder().encode(reply) else { return 1 }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
        return 0
    }
}
