import Foundation
import ChildGeneration
import RunnerCore
import Testing

/// The scaffold's tree, checked per category with the app's own node shapes
/// (React Flow nodes, `data: {label, componentId, category, icon, color}`,
/// `type` = componentId or "custom", plain edges).
@Suite struct ScaffoldTests {
    struct Tree {
        let files: [String: String]
        init(_ spec: ArchitectureSpec) {
            var map: [String: String] = [:]
            for f in ScaffoldGenerator.files(for: spec) { map[f.path] = f.content }
            files = map
        }
        subscript(_ path: String) -> String { files[path] ?? "" }
        func has(_ path: String) -> Bool { files[path] != nil }
        func under(_ folder: String) -> [String] { files.keys.filter { $0.hasPrefix(folder + "/") }.sorted() }
        /// The compose block of one service (its lines up to the next service).
        func service(_ name: String) -> String? {
            let lines = self["docker-compose.yml"].split(separator: "\n", omittingEmptySubsequences: false)
            guard let start = lines.firstIndex(of: "  \(name):") else { return nil }
            let rest = lines[(start + 1)...].prefix { $0.hasPrefix("   ") }
            return rest.joined(separator: "\n")
        }
    }

    /// An app-shaped diagram: one node per (componentId, category), `type`
    /// alternating between the componentId and "custom", and `edges` as pairs.
    static func diagram(_ nodes: [(String, String)], edges: [(Int, Int)]) throws -> ArchitectureSpec {
        let ns: [JSONValue] = nodes.enumerated().map { i, n in
            ["id": .string("node-\(i)"), "type": .string(i % 2 == 0 ? n.0 : "custom"), "position": ["x": 0, "y": 0],
             "data": ["label": .string(Catalogue.entry(n.0)?.name ?? n.0), "componentId": .string(n.0),
                      "category": .string(n.1), "icon": .string(n.0), "color": "#000000"]]
        }
        let es: [JSONValue] = edges.map { a, b in
            ["id": .string("e\(a)-\(b)"), "source": .string("node-\(a)"), "target": .string("node-\(b)"),
             "sourceHandle": nil, "targetHandle": nil]
        }
        return try ArchitectureSpec(json: ["name": "Diagram", "nodes": .array(ns), "edges": .array(es)], fallbackName: "x")
    }

    @Test func mixedDiagramFromTheAppMatchesWhatEachNodeMeans() throws {
        let spec = try ArchitectureSpec(json: try TestEnv.exampleSpec("architex-app-mixed.json"), fallbackName: "x")
        let t = Tree(spec)
        let compose = t["docker-compose.yml"]
        // Infrastructure: official images, a volume and a healthcheck each; no server code.
        for (slug, image) in [("postgresql", "postgres:16"), ("redis-cache", "redis:7"), ("apache-kafka", "apache/kafka:3.7.0"),
                              ("aws-s3", "minio/minio:"), ("elasticsearch", "docker.elastic.co/elasticsearch/elasticsearch:8.14.3")] {
            let block = try #require(t.service(slug), "\(slug) must be a compose service")
            #expect(block.contains("image: \(image)"), "\(slug): \(block)")
            #expect(block.contains("\(slug)-data:") && block.contains("healthcheck:"), "\(slug): \(block)")
            #expect(!block.contains("build:"))
            #expect(t.under(slug).allSatisfy { $0.hasSuffix("init.sql") }, "no server for \(slug): \(t.under(slug))")
        }
        #expect(compose.contains("# local stand-in for AWS S3"))
        // SaaS: no service and no folder of its own; modules with the SDK where edges lead.
        for slug in ["clerk", "stripe", "openai", "sentry", "resend"] {
            #expect(t.service(slug) == nil && t.under(slug).isEmpty, "\(slug) must not become a server")
        }
        #expect(t["fastapi/integrations/stripe.py"].contains("import stripe"))
        #expect(t["fastapi/integrations/openai.py"].contains("from openai import OpenAI"))
        #expect(t["next-js/lib/integrations/clerk.js"].contains("@clerk/nextjs"))
        #expect(t["go/integrations/resend.go"].contains("RESEND_API_KEY"))
        #expect(t["fastapi/requirements.txt"].contains("stripe==") && t["fastapi/requirements.txt"].contains("sentry-sdk=="))
        #expect(t["next-js/package.json"].contains("\"@clerk/nextjs\"") && t["next-js/package.json"].contains("\"@sentry/nextjs\""))
        #expect(t["go/go.mod"].contains("github.com/resend/resend-go"))
        for v in ["STRIPE_SECRET_KEY=", "CLERK_SECRET_KEY=", "OPENAI_API_KEY=", "SENTRY_DSN=", "RESEND_API_KEY="] {
            #expect(t[".env.example"].contains(v))
        }
        #expect(t.service("fastapi")?.contains("STRIPE_SECRET_KEY: \"${STRIPE_SECRET_KEY:-}\"") == true, "keys come from .env")
        // Frameworks: runnable starters in their own idiom.
        #expect(t["next-js/package.json"].contains("\"next\":") && t.has("next-js/app/page.js") && t.has("next-js/app/api/health/route.js"))
        #expect(t["fastapi/main.py"].contains("from fastapi import FastAPI") && t["fastapi/requirements.txt"].contains("fastapi=="))
        #expect(t["go/go.mod"].hasPrefix("module ") && t["go/main.go"].contains("net/http"))
        for app in ["next-js", "fastapi", "go"] { #expect(t.has("\(app)/Dockerfile") && t.service(app)?.contains("build: ./\(app)") == true) }
        // Edges: connection variables, depends_on on healthy services, client libraries.
        let api = try #require(t.service("fastapi"))
        for v in ["DATABASE_URL: \"postgres://postgres:postgres@postgresql:5432/app\"", "REDIS_URL: \"redis://redis-cache:6379\"",
                  "KAFKA_BROKERS: \"apache-kafka:9092\"", "ELASTICSEARCH_URL:", "S3_ENDPOINT: \"http://aws-s3:9000\""] {
            #expect(api.contains(v), "fastapi lacks \(v)")
        }
        #expect(api.contains("postgresql:\n        condition: service_healthy"))
        for lib in ["psycopg[binary]==", "redis==", "confluent-kafka==", "elasticsearch==", "boto3=="] {
            #expect(t["fastapi/requirements.txt"].contains(lib), "fastapi lacks \(lib)")
        }
        #expect(t["go/go.mod"].contains("github.com/segmentio/kafka-go") && t["go/go.mod"].contains("github.com/jackc/pgx/v5"))
        #expect(t.service("next-js")?.contains("FASTAPI_URL: \"http://fastapi:8001\"") == true)
        // Hosting and CI/CD: their files.
        #expect(t["next-js/vercel.json"].contains("\"framework\": \"nextjs\""))
        #expect(t[".github/workflows/ci.yml"].contains("working-directory: fastapi"))
        // The README draws the diagram and says what each component became.
        let readme = t["README.md"]
        #expect(readme.contains("```mermaid") && readme.contains("n0 --> n1"))
        for c in spec.components { #expect(readme.contains("| \(c.name) | \(c.entry.name) (\(c.entry.category.rawValue)) |")) }
        #expect(readme.contains("integration module in `fastapi/`"))
    }

    @Test func everyFrameworkIsARunnableStarterInItsOwnIdiom() throws {
        let frameworks: [(String, String, String, String)] = [
            // id, category, manifest, what the manifest or entry file must hold
            ("fastapi", "backend", "requirements.txt", "fastapi=="), ("express", "backend", "package.json", "\"express\""),
            ("nodejs", "backend", "package.json", "\"type\": \"module\""), ("django", "backend", "requirements.txt", "Django=="),
            ("flask", "backend", "requirements.txt", "Flask=="), ("spring", "backend", "pom.xml", "spring-boot-starter-web"),
            ("nestjs", "backend", "package.json", "\"@nestjs/core\""), ("go", "backend", "go.mod", "go 1.22"),
            ("rails", "backend", "Gemfile", "gem \"rails\""), ("laravel", "backend", "composer.json", "laravel/framework"),
            ("react", "frontend", "package.json", "\"react-dom\""), ("nextjs", "frontend", "package.json", "\"next\""),
            ("vue", "frontend", "package.json", "\"vue\""), ("svelte", "frontend", "package.json", "\"@sveltejs/kit\""),
            ("angular", "frontend", "package.json", "\"@angular/core\""), ("solid", "frontend", "package.json", "\"solid-js\""),
            ("astro", "frontend", "package.json", "\"astro\""), ("remix", "frontend", "package.json", "\"@remix-run/react\""),
            ("nuxt", "frontend", "package.json", "\"nuxt\""),
        ]
        // Each framework joined to PostgreSQL and Stripe.
        let n = frameworks.count
        let spec = try Self.diagram(frameworks.map { ($0.0, $0.1) } + [("postgresql", "database"), ("stripe", "payments")],
                                    edges: (0..<n).flatMap { [($0, n), ($0, n + 1)] })
        let t = Tree(spec)
        let pgClient: [String: String] = ["requirements.txt": "psycopg[binary]", "package.json": "\"pg\"", "go.mod": "jackc/pgx",
                                          "pom.xml": "<artifactId>postgresql</artifactId>", "Gemfile": "gem \"pg\""]
        for (i, (id, _, manifest, marker)) in frameworks.enumerated() {
            let slug = spec.components[i].slug
            let text = t["\(slug)/\(manifest)"]
            #expect(text.contains(marker), "\(id): \(manifest) lacks \(marker)")
            #expect(t.has("\(slug)/Dockerfile") && t.has("\(slug)/README.md"), "\(id)")
            // Browser-only apps reach the database through a backend, never directly.
            let browserOnly = ["react", "vue", "angular", "solid"].contains(id)
            if let client = pgClient[manifest], id != "laravel" {
                #expect(text.contains(client) != browserOnly, "\(id): the PostgreSQL client belongs in \(manifest) unless browser-only")
            }
            #expect(t.under(slug).contains { $0.lowercased().contains("stripe") }, "\(id): a Stripe integration module in \(t.under(slug))")
            #expect(t.service(slug)?.contains("DATABASE_URL:") == !browserOnly, "\(id) is wired to the database unless browser-only")
        }
        #expect(t["ruby-on-rails/config/initializers/stripe.rb"].contains("STRIPE_SECRET_KEY"))
        #expect(t["spring-boot/pom.xml"].contains("<artifactId>stripe-java</artifactId>"))
    }

    @Test func infrastructureBecomesComposeServicesOrConfigurationAndNeverAServer() throws {
        let ids = CatalogueTests.allIds.filter { ["database", "cache", "queue", "storage", "search"].contains($0.category) }
        let spec = try Self.diagram([("express", "backend")] + ids.map { ($0.id, $0.category) },
                                    edges: (1...ids.count).map { (0, $0) })
        let t = Tree(spec)
        for (i, c) in spec.components.enumerated() where i > 0 {
            guard case .infrastructure(let infra) = c.entry.becomes else { Issue.record("\(c.componentId)"); continue }
            #expect(t.under(c.slug).allSatisfy { $0.hasSuffix("init.sql") }, "\(c.componentId) must not be a server")
            if let image = infra.image {
                let block = try #require(t.service(c.slug), "\(c.componentId) needs a compose service")
                #expect(block.contains("image: \(image)"))
                #expect(block.contains("healthcheck:"), "\(c.componentId) needs a healthcheck")
                if infra.volume != nil { #expect(block.contains("\(c.slug)-data:")) }
            } else {
                #expect(t.service(c.slug) == nil, "\(c.componentId) is managed: configuration only")
            }
            for v in infra.connection { #expect(t[".env.example"].contains("\(v.name)="), "\(c.componentId): \(v.name)") }
        }
        // Stateful services keep their data; the managed-only ones have their stand-ins.
        #expect(t.service("aws-dynamodb")?.contains("amazon/dynamodb-local") ?? t["docker-compose.yml"].contains("amazon/dynamodb-local"))
        #expect(t["docker-compose.yml"].contains("minio/minio") && t["docker-compose.yml"].contains("elasticmq"))
        #expect(t.service("express")?.contains("KAFKA_BROKERS:") == true && t.service("express")?.contains("AMQP_URL:") == true)
        #expect(t["express/package.json"].contains("\"kafkajs\"") && t["express/package.json"].contains("\"mongodb\""))
    }

    @Test func hostingAndPipelinesBecomeTheirFiles() throws {
        let targets = CatalogueTests.allIds.filter { ["hosting", "cicd"].contains($0.category) }
        let spec = try Self.diagram([("react", "frontend"), ("express", "backend")] + targets.map { ($0.id, $0.category) },
                                    edges: [(0, 1)])
        let t = Tree(spec)
        for path in ["react/vercel.json", "react/netlify.toml", "react/wrangler.toml", "react/fly.toml", "express/fly.toml",
                     "express/railway.json", "render.yaml", ".do/app.yaml", "deploy/gcp/cloudbuild.yaml",
                     "deploy/azure/express.containerapp.yaml", "deploy/aws-ec2/user-data.sh",
                     ".github/workflows/ci.yml", ".gitlab-ci.yml", ".circleci/config.yml", "Jenkinsfile",
                     "deploy/argocd/application.yaml", "deploy/k8s/express.yaml", "infra/terraform/main.tf",
                     "infra/terraform/variables.tf", "infra/terraform/outputs.tf"] {
            #expect(t.has(path), "missing \(path)")
        }
        #expect(t["render.yaml"].contains("name: react") && t["render.yaml"].contains("name: express"))
        #expect(t[".github/workflows/ci.yml"].contains("npm run build") && t[".github/workflows/ci.yml"].contains("node --check"))
        // Hosting and CI/CD nodes run nothing themselves.
        for c in spec.components.dropFirst(2) { #expect(t.service(c.slug) == nil) }
    }

    /// Every framework, every SaaS with a compose service, hosting and CI/CD,
    /// written through the real tree writer and parsed by the real tools:
    /// Python compiles, JSON/YAML/TOML/XML parse, and every JavaScript file
    /// without JSX passes `node --check`.
    @Test func generatedFilesParseWithTheRealTools() async throws {
        let frameworks = CatalogueTests.allIds.filter { ["backend", "frontend"].contains($0.category) }
        let others: [(String, String)] = [("postgresql", "database"), ("kafka", "queue"), ("stripe", "payments"),
                                          ("clerk", "auth"), ("sentry", "monitoring"), ("prometheus", "monitoring"),
                                          ("openai", "ml"), ("fly", "hosting"), ("render", "hosting"), ("netlify", "hosting"),
                                          ("github-actions", "cicd"), ("gitlab-ci", "cicd"), ("argocd", "cicd")]
        let n = frameworks.count
        let spec = try Self.diagram(frameworks.map { ($0.id, $0.category) } + others,
                                    edges: (0..<n).flatMap { i in (n..<(n + 7)).map { (i, $0) } } + [(10, 0)])
        let root = TestEnv.tempDir("tree")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let files = ScaffoldGenerator.files(for: spec)
        _ = try TreeWriter(root: root, limits: TreeLimits(maxFiles: 2000, maxFileBytes: 1 << 20, maxTotalBytes: 50 << 20))
            .write(files.map { ($0.path, Array($0.content.utf8)) })
        let fixture = TestEnv.fixtures + "/check_tree.py"
        let parsed = try await runProcess("/usr/bin/python3", [fixture, root])
        #expect(parsed.status == 0, "\(parsed.stdout)")
        let parseable = files.filter { f in [".py", ".json", ".yml", ".yaml", ".toml", ".xml"].contains { f.path.hasSuffix($0) } }
        #expect(parseable.count > 60)
        #expect(parsed.stdout.contains("checked \(parseable.count) files"), "\(parsed.stdout)")
        let scripts = files.filter { ($0.path.hasSuffix(".js") || $0.path.hasSuffix(".mjs"))
            && $0.content.range(of: #"<[A-Za-z/>]"#, options: .regularExpression) == nil }
        #expect(scripts.count > 30)
        for f in scripts {
            let r = try await runProcess("/usr/bin/node", ["--check", root + "/" + f.path])
            #expect(r.status == 0, "\(f.path): \(r.stderr)")
        }
    }

    @Test func outputIsDeterministicForTheSameSpec() throws {
        for name in ["architex-app-mixed.json", "ecommerce-seed-shape.json", "webapp-custom-shape.json"] {
            let json = try TestEnv.exampleSpec(name)
            let a = ScaffoldGenerator.files(for: try ArchitectureSpec(json: json, fallbackName: "x"))
            // The same document re-read (its keys in another order) gives the same bytes.
            let b = ScaffoldGenerator.files(for: try ArchitectureSpec(json: try JSONValue.parse(json.prettyString), fallbackName: "x"))
            #expect(a.map(\.path) == b.map(\.path), "\(name)")
            #expect(a.map(\.content) == b.map(\.content), "\(name)")
            #expect(Set(a.map(\.path)).count == a.count, "\(name): no path twice")
        }
    }
}
