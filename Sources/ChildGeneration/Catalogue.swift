/// The Architex palette as one table: every `componentId` the web app offers,
/// with its category, display name and what the scaffold makes of it. The
/// scaffold generator, `instructions.md` and the Gemini prompt all read it,
/// so every generator is told the same thing about each node.
public enum Catalogue {
    /// Every entry, keyed by `componentId` (see CatalogueTable.swift).
    public static let entries: [String: CatalogueEntry] = {
        var map: [String: CatalogueEntry] = [:]
        for e in table { map[e.id] = e }
        return map
    }()

    /// Ids outside the palette that demo specs and the seed's `data.framework` use.
    static let aliases: [String: String] = [
        "postgres": "postgresql", "pg": "postgresql", "mongo": "mongodb", "node": "nodejs", "node.js": "nodejs",
        "next": "nextjs", "next.js": "nextjs", "react.js": "react", "vue.js": "vue", "nest": "nestjs",
        "golang": "go", "spring-boot": "spring", "springboot": "spring", "ruby-on-rails": "rails",
        "mariadb": "mysql", "rabbit": "rabbitmq", "amqp": "rabbitmq", "elastic": "elasticsearch",
        "github": "github-actions", "gitlab": "gitlab-ci", "aws-s3": "s3", "ec2": "aws-ec2", "aws": "aws-ec2",
        "cloudflare-pages": "cloudflare", "auth.js": "nextauth", "next-auth": "nextauth", "svelte-kit": "svelte",
        "sveltekit": "svelte", "gcp-pubsub": "pubsub", "google-pubsub": "pubsub", "cockroach": "cockroachdb",
    ]

    /// What an unknown id of a category becomes.
    static let categoryDefaults: [Category: String] = [
        .backend: "nodejs", .frontend: "react", .database: "postgresql", .cache: "redis-cache", .queue: "rabbitmq",
        .storage: "minio", .search: "elasticsearch", .cicd: "github-actions", .hosting: "render",
    ]

    /// The entry for `id` (or an alias of it), if the palette has one.
    public static func entry(_ id: String) -> CatalogueEntry? {
        let key = id.lowercased()
        return entries[key] ?? aliases[key].flatMap { entries[$0] }
    }

    /// The entry with `id` as stored in a `Component` (generic ones included).
    public static func lookup(_ id: String) -> CatalogueEntry {
        if let e = entry(id) { return e }
        if id.hasPrefix("generic-"), let cat = Category(rawValue: String(id.dropFirst(8))) { return genericOrDefault(cat) }
        return entries["nodejs"]!
    }

    /// Resolves a node: its `componentId` (or the seed's `data.framework`),
    /// else by its category, else by its label, else by the seed's node
    /// `type`. `note` says which fallback was taken (nil for a palette id).
    public static func resolve(componentId: String?, category: String?, label: String?,
                               nodeType: String?) -> (entry: CatalogueEntry, note: String?) {
        if let id = componentId, let e = entries[id.lowercased()] { return (e, nil) }
        if let id = componentId, let e = entry(id) { return (e, "'\(id)' is not a palette id; read as \(e.name) (\(e.id))") }
        let what = componentId.map { "'\($0)'" } ?? "a node without componentId"
        if let cat = category.flatMap({ Category(rawValue: $0.lowercased()) }) {
            if let label, let e = byLabel(label), e.category == cat {
                return (e, "\(what) is not in the palette; its label '\(label)' names \(e.name) (\(e.id))")
            }
            return (genericOrDefault(cat), "\(what) is not in the palette; generated as its category '\(cat.rawValue)'")
        }
        if let label, let e = byLabel(label) {
            return (e, "\(what) has no known category; its label '\(label)' names \(e.name) (\(e.id))")
        }
        if let type = nodeType?.lowercased(), let e = entry(type) {
            return (e, "\(what) is not in the palette; its node type names \(e.name) (\(e.id))")
        }
        if let type = nodeType?.lowercased(), let cat = Category(rawValue: type) ?? Self.seedKinds[type] {
            return (genericOrDefault(cat), "\(what) is not in the palette; generated as the node type '\(type)'")
        }
        return (entries["nodejs"]!, "\(what) matches no category or label; generated as a Node.js service")
    }

    /// The seed's node types that are not palette categories.
    static let seedKinds: [String: Category] = ["api": .backend, "service": .backend, "web": .frontend, "db": .database]

    /// An entry whose id, display name or alias appears in `label` as whole
    /// words (the longest name first).
    static func byLabel(_ label: String) -> CatalogueEntry? {
        let text = "-" + ArchitectureSpec.slug(label) + "-"
        func has(_ name: String) -> Bool {
            let s = ArchitectureSpec.slug(name)
            return !s.isEmpty && text.contains("-" + s + "-")
        }
        for e in table.sorted(by: { ($0.name.count, $0.id) > ($1.name.count, $1.id) }) where has(e.name) || has(e.id) {
            return e
        }
        for (alias, id) in aliases.sorted(by: { $0.key > $1.key }) where has(alias) { return entries[id] }
        return nil
    }

    /// The category's default entry, or a generic one for SaaS categories.
    static func genericOrDefault(_ cat: Category) -> CatalogueEntry {
        if let id = categoryDefaults[cat], let e = entries[id] { return e }
        return CatalogueEntry(id: "generic-\(cat.rawValue)", category: cat, name: "External \(cat.rawValue) service",
                              becomes: .integration(Integration(env: [("\(cat.rawValue.uppercased())_API_KEY", "")],
                                                                sdks: [:], web: nil)))
    }
}

/// The palette's categories.
public enum Category: String, Sendable, CaseIterable, Hashable {
    case backend, frontend, database, hosting, ml, auth, cache, queue, storage, cicd, monitoring, search, payments, email
}

/// One palette component.
public struct CatalogueEntry: Sendable {
    public let id: String
    public let category: Category
    public let name: String
    public let becomes: Becomes

    /// One line: what the scaffold generates for it (README, instructions.md, Gemini).
    public var summary: String {
        switch becomes {
        case .framework(let f): return "a runnable \(f.language.displayName) starter (\(f.idiom))"
        case .infrastructure(let i):
            let vars = i.connection.map(\.name).joined(separator: ", ")
            if let image = i.image {
                let role = i.standIn ? "a docker-compose service running the local stand-in `\(image)`"
                    : "a docker-compose service (`\(image)`, volume, healthcheck)"
                return "\(role); dependents get \(vars) and its client library; no server code"
            }
            return "configuration only (\(vars)); a managed service with no local stand-in; no server code"
        case .integration(let g):
            let local = g.localService.map { ", plus a docker-compose service (`\($0.image ?? "")`)" } ?? ""
            return "an integration module with its SDK in each connected service; .env.example: "
                + g.env.map(\.0).joined(separator: ", ") + local + "; no server of its own"
        case .hosting(let h): return "deployment files: " + h.files
        case .pipeline(let p): return "pipeline files: " + p.files
        }
    }
}

/// What a component becomes.
public enum Becomes: Sendable {
    case framework(Framework)
    case infrastructure(Infra)
    case integration(Integration)
    case hosting(Hosting)
    case pipeline(Pipeline)
}

/// The languages the starters are written in.
public enum Language: String, Sendable, Hashable, CaseIterable {
    case node, python, go, java, ruby, php
    var displayName: String {
        switch self {
        case .node: "JavaScript"
        case .python: "Python"
        case .go: "Go"
        case .java: "Java"
        case .ruby: "Ruby"
        case .php: "PHP"
        }
    }
}

/// A package in a manifest (`group:artifact` for Maven).
public struct Package: Sendable, Hashable, Comparable {
    public let name: String
    public let version: String
    public init(_ name: String, _ version: String) { self.name = name; self.version = version }
    public static func < (a: Package, b: Package) -> Bool { (a.name, a.version) < (b.name, b.version) }
}
