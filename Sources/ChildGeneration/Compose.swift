/// docker-compose.yml and .env.example from the plan.
enum Compose {
    /// A YAML scalar in double quotes.
    static func q(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "$", with: "$$") + "\""
    }

    /// The compose service of an infrastructure component or a SaaS's local service.
    static func infraService(_ c: Component) -> Infra? {
        switch c.entry.becomes {
        case .infrastructure(let i) where i.image != nil: return i
        case .integration(let g): return g.localService
        default: return nil
        }
    }

    static func yaml(_ spec: ArchitectureSpec, plan: ScaffoldPlan) -> String {
        var y = "services:\n"
        var volumes: [String] = []
        for c in spec.components {
            if let app = plan.app(c.id) {
                y += "  \(c.slug):\n    build: ./\(c.slug)\n    ports:\n      - \"\(app.port):\(app.port)\"\n"
                y += "    environment:\n      PORT: \"\(app.port)\"\n"
                for v in app.env {
                    y += "      \(v.name): " + (app.fromEnvFile.contains(v.name) ? "\"${\(v.name):-}\"" : q(v.value)) + "\n"
                }
                if !app.waitsFor.isEmpty || !app.calls.isEmpty {
                    y += "    depends_on:\n"
                    for s in app.waitsFor {
                        let healthy = spec.components.first { $0.slug == s }.flatMap(infraService)?.healthcheck != nil
                        y += "      \(s):\n        condition: \(healthy ? "service_healthy" : "service_started")\n"
                    }
                    for s in app.calls where !app.waitsFor.contains(s) {
                        y += "      \(s):\n        condition: service_started\n"
                    }
                }
            } else if let infra = infraService(c), let image = infra.image {
                if infra.standIn { y += "  # local stand-in for \(c.entry.name); point the variables at the managed service in production\n" }
                y += "  \(c.slug):\n    image: \(image)\n"
                if let command = infra.command { y += "    command: \(command)\n" }
                if !infra.environment.isEmpty {
                    y += "    environment:\n" + infra.environment.map { "      \($0.name): \(q($0.value(host: c.slug)))\n" }.joined()
                }
                var mounts: [String] = []
                if let path = infra.volume {
                    volumes.append("\(c.slug)-data")
                    mounts.append("\(c.slug)-data:\(path)")
                }
                if infra.client == .postgres || infra.client == .mysql {
                    mounts.append("./\(c.slug)/init.sql:/docker-entrypoint-initdb.d/init.sql:ro")
                }
                if c.componentId == "prometheus" { mounts.append("./\(c.slug)/prometheus.yml:/etc/prometheus/prometheus.yml:ro") }
                if !mounts.isEmpty { y += "    volumes:\n" + mounts.map { "      - \($0)\n" }.joined() }
                if let check = infra.healthcheck {
                    y += "    healthcheck:\n      test: [\"CMD-SHELL\", \(q(check))]\n      interval: 10s\n      timeout: 5s\n      retries: 10\n"
                }
            }
        }
        if !volumes.isEmpty { y += "\nvolumes:\n" + volumes.map { "  \($0):\n" }.joined() }
        return y
    }

    /// Every variable the diagram needs: local values for what compose runs,
    /// placeholders for managed services and SaaS keys (never real secrets).
    static func envExample(_ spec: ArchitectureSpec, plan: ScaffoldPlan) -> String {
        var out = "# Generated from the architecture diagram. Copy to .env and fill in the blanks.\n"
        var seen = Set<String>()
        for c in spec.components {
            var lines: [(String, String)] = []
            switch c.entry.becomes {
            case .infrastructure(let i): lines = i.connection.map { ($0.name, $0.value(host: c.slug)) }
            case .integration(let g):
                lines = g.env + (g.localService?.connection.map { ($0.name, $0.value(host: c.slug)) } ?? [])
            default: continue
            }
            lines = lines.filter { seen.insert($0.0).inserted }
            guard !lines.isEmpty else { continue }
            let note: String
            if case .infrastructure(let i) = c.entry.becomes {
                note = i.image == nil ? "managed service, no local stand-in" : i.standIn ? "local stand-in values" : "local values"
            } else {
                note = "SaaS"
            }
            out += "\n# \(c.name): \(c.entry.name) (\(note))\n" + lines.map { "\($0.0)=\($0.1)\n" }.joined()
        }
        return out
    }
}
