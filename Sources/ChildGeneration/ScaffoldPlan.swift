/// What the scaffold generates, decided once from the spec and the catalogue:
/// which components run code, what each edge wires into them, and what each
/// hosting and pipeline node deploys. Edges between a framework and anything
/// else count in either direction (a browser-only frontend is not wired to
/// infrastructure: its backend is); between two frameworks the source calls
/// the target (a frontend always calls a backend).
struct ScaffoldPlan {
    /// A framework component: a runnable starter.
    struct App {
        let component: Component
        let framework: Framework
        let port: Int
        /// Connection variables with their local values, sorted, one per name.
        var env: [EnvVar] = []
        /// Variables compose takes from `.env` (SaaS keys, managed services), not from the diagram.
        var fromEnvFile: Set<String> = []
        /// Client libraries and SDKs for its manifest, sorted, one per name.
        var packages: [Package] = []
        /// Integration modules: the SaaS entry and its SDK (nil: configuration only).
        var integrations: [(CatalogueEntry, SDK?)] = []
        /// Compose services it waits for (healthy) and the apps it calls (started).
        var waitsFor: [String] = []
        var calls: [String] = []
    }

    let spec: ArchitectureSpec
    private(set) var apps: [App] = []

    init(_ spec: ArchitectureSpec) {
        self.spec = spec
        for (index, c) in spec.components.enumerated() {
            guard case .framework(let fw) = c.entry.becomes else { continue }
            apps.append(App(component: c, framework: fw, port: (fw.isFrontend ? 3000 : 8000) + index))
        }
        for i in apps.indices { wire(&apps[i]) }
    }

    func app(_ id: String) -> App? { apps.first { $0.component.id == id } }

    /// The components an edge joins to `id`, in the spec's order, each once.
    func neighbours(_ id: String) -> [Component] {
        let ids = Set(spec.connections.flatMap { e -> [String] in
            e.from == id ? [e.to] : e.to == id ? [e.from] : []
        })
        return spec.components.filter { ids.contains($0.id) && $0.id != id }
    }

    private func wire(_ app: inout App) {
        var env: [String: String] = [:]
        var packages: [String: Package] = [:]
        let lang = app.framework.language
        func add(_ p: Package?) { if let p, packages[p.name] == nil { packages[p.name] = p } }
        for other in neighbours(app.component.id) {
            switch other.entry.becomes {
            case .framework(let fw):
                guard let target = self.app(other.id) else { continue }
                // Frontends call backends; otherwise the edge's source calls its target.
                let calls = (app.framework.isFrontend && !fw.isFrontend)
                    || (app.framework.isFrontend == fw.isFrontend
                        && spec.connections.contains { $0.from == app.component.id && $0.to == other.id })
                if calls {
                    env[Self.urlVariable(other)] = "http://\(other.slug):\(target.port)"
                    app.calls.append(other.slug)
                }
            case .infrastructure(let infra):
                // A browser-only app cannot open a database or queue connection; its backend does.
                if app.framework.isFrontend && !app.framework.rendersOnServer { continue }
                for v in infra.connection { env[v.name] = v.value(host: other.slug) }
                if infra.image == nil { app.fromEnvFile.formUnion(infra.connection.map(\.name)) }
                add(infra.client?.package(for: lang))
                if infra.image != nil { app.waitsFor.append(other.slug) }
            case .integration(let g):
                for (k, v) in g.env where env[k] == nil {
                    env[k] = v
                    app.fromEnvFile.insert(k)
                }
                if let local = g.localService {
                    for v in local.connection { env[v.name] = v.value(host: other.slug) }
                    app.waitsFor.append(other.slug)
                }
                let sdk = app.framework == .nextjs && g.next != nil ? g.next
                    : app.framework.isFrontend && !(app.framework.rendersOnServer && g.web == nil) ? g.web : g.sdks[lang]
                sdk?.packages.forEach { add($0) }
                if g.sdks.isEmpty && g.web == nil && g.localService != nil { continue }
                app.integrations.append((other.entry, sdk))
            case .hosting, .pipeline:
                continue
            }
        }
        app.env = env.keys.sorted().map { EnvVar($0, env[$0]!) }
        app.packages = packages.values.sorted()
    }

    /// `<SLUG>_URL`: how one app finds another.
    static func urlVariable(_ c: Component) -> String {
        c.slug.uppercased().replacingOccurrences(of: "-", with: "_") + "_URL"
    }

    /// The apps a hosting or pipeline node serves: those it is joined to, else
    /// every app (`frontendsOnly`: only frontends when there are any).
    func targets(of c: Component, frontendsOnly: Bool) -> [App] {
        let joined = neighbours(c.id).compactMap { app($0.id) }
        if !joined.isEmpty { return joined }
        let frontends = apps.filter { $0.framework.isFrontend }
        return frontendsOnly && !frontends.isEmpty ? frontends : apps
    }
}
