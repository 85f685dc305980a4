import RunnerCore

/// The offline, deterministic generator. Every node becomes what the
/// `Catalogue` says: frameworks a runnable starter in their own folder,
/// infrastructure a docker-compose service (official image, volume,
/// healthcheck), SaaS an integration module inside each connected service,
/// hosting and CI/CD their files; edges become connection variables,
/// `depends_on` and client libraries. Same spec in, same bytes out.
public enum ScaffoldGenerator {
    /// The files for `spec`, as (relative path, content) pairs in a stable order.
    public static func files(for spec: ArchitectureSpec) -> [(path: String, content: String)] {
        let plan = ScaffoldPlan(spec)
        var files: [(String, String)] = []
        var made: [String: [String]] = [:]
        for c in spec.components {
            var own: [(String, String)] = []
            switch c.entry.becomes {
            case .framework:
                guard let app = plan.app(c.id) else { continue }
                let starter = app.framework.isFrontend ? FrontendStarters.files(app) : BackendStarters.files(app)
                own = starter.map { ("\(c.slug)/\($0.0)", $0.1) }
            case .infrastructure(let infra):
                if infra.image != nil, infra.client == .postgres || infra.client == .mysql {
                    own = [("\(c.slug)/init.sql", "-- Initial schema for \(c.name); runs on the first start of its volume.\nCREATE TABLE IF NOT EXISTS health_check (\n    id INTEGER PRIMARY KEY,\n    checked_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\n")]
                }
            case .integration(let g):
                if c.componentId == "prometheus", g.localService != nil {
                    own = [("\(c.slug)/prometheus.yml", prometheusConfig(c, plan: plan))]
                }
            case .hosting(let h): own = Deployment.hosting(h, c, plan: plan)
            case .pipeline(let p): own = Deployment.pipeline(p, c, plan: plan)
            }
            made[c.id] = own.map(\.0)
            files += own
        }
        // Several hosting or pipeline nodes may name the same file: the first wins.
        var seen = Set<String>()
        files = files.filter { seen.insert($0.0).inserted }
        let root = [("README.md", readme(spec, plan: plan, made: made)), (".gitignore", gitignore),
                    ("docker-compose.yml", Compose.yaml(spec, plan: plan)), (".env.example", Compose.envExample(spec, plan: plan))]
        return (root + files).map { (path: $0.0, content: $0.1) }
    }

    static func prometheusConfig(_ c: Component, plan: ScaffoldPlan) -> String {
        let targets = plan.neighbours(c.id).compactMap { plan.app($0.id) }
        var y = "global:\n  scrape_interval: 15s\n\nscrape_configs:\n"
        for a in targets {
            y += "  - job_name: \(a.component.slug)\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"\(a.component.slug):\(a.port)\"]\n"
        }
        return targets.isEmpty ? y + "  - job_name: prometheus\n    static_configs:\n      - targets: [\"localhost:9090\"]\n" : y
    }

    /// What was generated for `c`, in one line, for the README.
    static func generatedLine(_ c: Component, plan: ScaffoldPlan, made: [String]) -> String {
        switch c.entry.becomes {
        case .framework:
            guard let app = plan.app(c.id) else { return "" }
            var s = "`\(c.slug)/`: \(app.framework.idiom), port \(app.port)"
            if !app.env.isEmpty { s += "; configured with " + app.env.map { "`\($0.name)`" }.joined(separator: ", ") }
            if !app.packages.isEmpty { s += "; client libraries " + app.packages.map { "`\($0.name)`" }.joined(separator: ", ") }
            return s
        case .infrastructure(let infra):
            guard let image = infra.image else {
                return "configuration only (managed service, no local stand-in): "
                    + infra.connection.map { "`\($0.name)`" }.joined(separator: ", ") + " in `.env.example`"
            }
            return "docker-compose service `\(c.slug)` (`\(image)`\(infra.standIn ? ", a local stand-in" : ""), volume, healthcheck)"
                + (made.isEmpty ? "" : ", " + made.map { "`\($0)`" }.joined(separator: ", "))
        case .integration(let g):
            let users = plan.apps.filter { a in a.integrations.contains { $0.0.id == c.entry.id } }
            var s = users.isEmpty ? "not connected to a service: its variables are in `.env.example`; connect it in the diagram to get an integration module"
                : "integration module in " + users.map { "`\($0.component.slug)/`" }.joined(separator: ", ")
            if let local = g.localService?.image { s += "; docker-compose service `\(c.slug)` (`\(local)`)" }
            return s
        case .hosting, .pipeline:
            return made.isEmpty ? "nothing to deploy: no framework in the diagram" : made.map { "`\($0)`" }.joined(separator: ", ")
        }
    }

    static func readme(_ spec: ArchitectureSpec, plan: ScaffoldPlan, made: [String: [String]]) -> String {
        var md = "# \(spec.name)\n\n"
        if !spec.description.isEmpty { md += spec.description + "\n\n" }
        if let prompt = spec.prompt { md += "> \(prompt.replacingOccurrences(of: "\n", with: "\n> "))\n\n" }
        md += "Generated by agent-runner from an Architex architecture diagram.\n\n## Diagram\n\n```mermaid\nflowchart LR\n"
        for (i, c) in spec.components.enumerated() {
            md += "    n\(i)[\"\(c.name.replacingOccurrences(of: "\"", with: "'")) (\(c.entry.name))\"]\n"
        }
        for e in spec.connections {
            guard let a = spec.components.firstIndex(where: { $0.id == e.from }),
                  let b = spec.components.firstIndex(where: { $0.id == e.to }) else { continue }
            md += "    n\(a) --> n\(b)\n"
        }
        md += "```\n\n## Components\n\n| component | what it is | what was generated |\n|---|---|---|\n"
        for c in spec.components {
            md += "| \(cell(c.name)) | \(c.entry.name) (\(c.entry.category.rawValue)) | \(cell(generatedLine(c, plan: plan, made: made[c.id] ?? []))) |\n"
        }
        md += "\n## Connections\n\n"
        if spec.connections.isEmpty { md += "None.\n" }
        for e in spec.connections {
            md += "- \(spec.component(e.from)?.name ?? e.from) → \(spec.component(e.to)?.name ?? e.to)"
            md += (e.label.map { " (\($0))" } ?? "") + "\n"
        }
        md += "\n## Run it\n\n```sh\ncp .env.example .env   # fill in the SaaS keys\ndocker compose up --build\n```\n\n"
        md += "Each service's folder has its own README with how to run it alone.\n"
        return md
    }

    static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    static let gitignore = """
    node_modules/
    dist/
    build/
    .next/
    .nuxt/
    .output/
    .svelte-kit/
    .astro/
    target/
    vendor/
    __pycache__/
    *.pyc
    .venv/
    .env
    *.log
    .DS_Store
    .terraform/
    *.tfstate*

    """
}
