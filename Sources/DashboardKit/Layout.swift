import Foundation
import JobStore
import RunnerCore

/// The page frame and the small pages (sign-in, errors).
enum Layout {
    /// A whole document: navigation (when signed in), `body`, the script.
    static func page(_ title: String, session: Session?, active: String = "", _ body: HTML) -> HTML {
        let nav: HTML
        if let session {
            let links: [HTML] = [("/", "Queue"), ("/jobs", "Jobs"), ("/spend", "Spend"), ("/runners", "Runners")].map { href, label in
                let current: HTML = active == label ? " aria-current=\"page\"" : ""
                return "<a href=\"\(href)\"\(current)>\(label)</a>"
            }
            nav = """
            <nav>\(links)
            <form method="post" action="/signout" class="signout">\(csrfField(session))<button type="submit">Sign out</button></form>
            </nav>
            """
        } else {
            nav = ""
        }
        let meta: HTML = session.map { "<meta name=\"csrf-token\" content=\"\($0.csrf)\">" } ?? ""
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        \(meta)
        <title>\(title) · agent-runner</title>
        <link rel="stylesheet" href="/assets/app.css">
        <script src="/assets/app.js" defer></script>
        </head>
        <body>
        <header><span class="brand">agent-runner</span>\(nav)</header>
        <main>
        \(body)
        </main>
        </body>
        </html>
        """
    }

    /// The hidden CSRF field every state-changing form carries.
    static func csrfField(_ session: Session) -> HTML {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(session.csrf)\">"
    }

    /// The sign-in form; `csrf` is the pre-session token of its double-submit cookie.
    static func signIn(csrf: String, next: String, failed: Bool) -> HTML {
        let message: HTML = failed ? "<p class=\"error\" role=\"alert\">That token is not valid.</p>" : ""
        return page("Sign in", session: nil, """
        <section class="signin">
        <h1>Sign in</h1>
        \(message)
        <form method="post" action="/signin">
        <input type="hidden" name="csrf" value="\(csrf)">
        <input type="hidden" name="next" value="\(next)">
        <label for="token">Dashboard token</label>
        <input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
        <button type="submit" id="signin">Sign in</button>
        </form>
        <p class="hint">The token is DASHBOARD_TOKEN from the runner's configuration.</p>
        </section>
        """)
    }

    /// An error page (404, 400, 409, 500).
    static func error(_ title: String, _ message: String, session: Session?) -> HTML {
        page(title, session: session, """
        <h1>\(title)</h1>
        <p class="error" role="alert">\(message)</p>
        <p><a href="/">Back to the queue</a></p>
        """)
    }
}
