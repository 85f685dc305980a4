import RunnerCore

/// Builds `instructions.md`: the brief every generator works from. What each
/// node means comes from the `Catalogue`, the same table the scaffold uses.
public enum Instructions {
    /// Markdown instructions for `spec`.
    public static func markdown(for spec: ArchitectureSpec) -> String {
        var md = "# Build: \(spec.name)\n\n"
        if !spec.description.isEmpty { md += spec.description + "\n\n" }
        if let prompt = spec.prompt { md += "## What the user asked for\n\n" + prompt + "\n\n" }
        md += "Generate a complete, runnable starter codebase for the architecture below.\n"
        md += "Write every file into the current directory (the repository root).\n\n"
        md += "## Components\n\n"
        md += "| name | component | category | folder | what it must become |\n|---|---|---|---|---|\n"
        for c in spec.components {
            let folder: String
            if case .framework = c.entry.becomes { folder = "`\(c.slug)/`" } else { folder = "-" }
            md += "| \(cell(c.name)) | \(cell(c.entry.name)) (`\(c.componentId)`) | \(c.entry.category.rawValue) | \(folder) "
                + "| \(cell(c.entry.summary)) |\n"
        }
        md += "\n## Connections\n\n"
        if spec.connections.isEmpty { md += "None: the components are independent.\n" }
        for e in spec.connections {
            let from = spec.component(e.from)?.name ?? e.from
            let to = spec.component(e.to)?.name ?? e.to
            md += "- \(from) → \(to)" + (e.label.map { " (\($0))" } ?? "") + "\n"
        }
        md += "\n## What each kind of component becomes\n\n" + Catalogue.rules + """

        ## Requirements

        1. One folder per framework component, named as in the table, with idiomatic starter code for its technology.
        2. Every connection above is wired: configuration by environment variables, with sensible local defaults.
        3. A `README.md` at the root with the diagram, each component and what was generated for it, and how to run everything.
        4. A `docker-compose.yml` at the root that starts all services locally, and a `.env.example` with every variable.
        5. A `.gitignore` suited to the technologies used.
        6. No secrets, no binary files, no symlinks, nothing under `.git`.

        The full architecture is in `spec.json` (normalised, with each component's `componentId`, `category` and
        `becomes`) and `architecture_spec.json` (as drawn).

        """
        return md
    }

    private static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}

extension Catalogue {
    /// The rules behind the table's last column, for every generator's brief.
    public static let rules = """
    - **Frameworks** (backend, frontend): a runnable starter in its own language and idiom, in its own folder \
    (Next.js with `next` and an app route, FastAPI importing `fastapi`, Go with `go.mod`, Spring with a build file, \
    Rails with a Gemfile, …), with a Dockerfile and a health route.
    - **Infrastructure** (database, cache, queue, search, storage): a docker-compose service with the official image, \
    a named volume and a healthcheck; never a generated server. A managed-only service (DynamoDB, Firebase, \
    PlanetScale, SQS, Pub/Sub, S3, …) is configuration plus its local stand-in where one exists (MinIO for S3).
    - **SaaS** (auth, payments, email, ml, monitoring): an integration module with the product's SDK inside each \
    service connected to it, and its variables in `.env.example`; never a server of its own.
    - **Hosting and CI/CD**: their files (`vercel.json`, `netlify.toml`, `fly.toml`, `render.yaml`, \
    `.github/workflows/ci.yml`, `.gitlab-ci.yml`, a Terraform skeleton, …) for the services they are connected to.
    - **Edges** are wiring: connection variables (`DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS`, …), `depends_on`, \
    and the client library in the dependent service's manifest.

    """
}
