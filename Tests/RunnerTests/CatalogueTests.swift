import ChildGeneration
import RunnerCore
import Testing

/// The palette as a catalogue (issue 14): every id of the Architex app's
/// palette is known, and unknown ids fall back visibly.
@Suite struct CatalogueTests {
    /// The palette, exactly as the issue lists it.
    static let palette: [(String, String)] = [
        ("backend", "fastapi express nodejs django flask spring nestjs go rails laravel"),
        ("frontend", "react nextjs vue svelte angular solid astro remix nuxt"),
        ("database", "postgresql mysql mongodb supabase firebase redis dynamodb planetscale sqlite cockroachdb"),
        ("hosting", "vercel netlify aws-ec2 gcp azure railway render digitalocean fly cloudflare"),
        ("ml", "openai anthropic huggingface tensorflow pytorch langchain replicate together"),
        ("auth", "auth0 clerk firebase-auth supabase-auth nextauth cognito okta keycloak"),
        ("cache", "redis-cache memcached cloudflare-cdn cloudfront fastly"),
        ("queue", "rabbitmq kafka sqs redis-pubsub pubsub nats"),
        ("storage", "s3 gcs azure-blob cloudflare-r2 supabase-storage minio"),
        ("cicd", "github-actions gitlab-ci circleci jenkins argocd terraform"),
        ("monitoring", "sentry datadog newrelic prometheus grafana logrocket"),
        ("search", "elasticsearch algolia meilisearch typesense opensearch"),
        ("payments", "stripe paypal square lemonsqueezy"),
        ("email", "resend sendgrid mailgun postmark ses"),
    ]

    static var allIds: [(id: String, category: String)] {
        palette.flatMap { cat, ids in ids.split(separator: " ").map { (String($0), cat) } }
    }

    @Test func everyPaletteIdIsCataloguedWithItsCategory() {
        #expect(Self.allIds.count == 98)
        for (id, category) in Self.allIds {
            let e = Catalogue.entry(id)
            #expect(e?.id == id, "\(id) is missing")
            #expect(e?.category.rawValue == category, "\(id) should be in \(category)")
            #expect(e.map { !$0.name.isEmpty && !$0.summary.isEmpty } == true)
            let r = Catalogue.resolve(componentId: id, category: category, label: "x", nodeType: id)
            #expect(r.entry.id == id && r.note == nil)
        }
        #expect(Catalogue.entries.count == 98, "the table holds the palette, nothing else")
    }

    @Test func categoriesBecomeWhatTheIssueSays() {
        for (id, category) in Self.allIds {
            let becomes = Catalogue.entry(id)!.becomes
            switch category {
            case "backend", "frontend":
                guard case .framework = becomes else { Issue.record("\(id) should be a framework"); continue }
            case "database", "cache", "queue", "storage", "search":
                guard case .infrastructure = becomes else { Issue.record("\(id) should be infrastructure"); continue }
            case "auth", "payments", "email", "ml", "monitoring":
                guard case .integration = becomes else { Issue.record("\(id) should be an integration"); continue }
            case "hosting":
                guard case .hosting = becomes else { Issue.record("\(id) should be hosting"); continue }
            default:
                guard case .pipeline = becomes else { Issue.record("\(id) should be a pipeline"); continue }
            }
        }
    }

    @Test func unknownIdsFallBackByCategoryThenLabelAndSaySo() {
        let alias = Catalogue.resolve(componentId: "postgres", category: "database", label: "DB", nodeType: "postgres")
        #expect(alias.entry.id == "postgresql")
        #expect(alias.note?.contains("'postgres' is not a palette id") == true)
        let byCategory = Catalogue.resolve(componentId: "cassandra", category: "database", label: "Events", nodeType: "custom")
        #expect(byCategory.entry.id == "postgresql")
        #expect(byCategory.note?.contains("generated as its category 'database'") == true)
        let labelInCategory = Catalogue.resolve(componentId: "kv", category: "cache", label: "Memcached pool", nodeType: nil)
        #expect(labelInCategory.entry.id == "memcached")
        #expect(labelInCategory.note?.contains("label 'Memcached pool'") == true)
        let auth = Catalogue.resolve(componentId: "auth", category: "auth", label: "Login", nodeType: "auth")
        #expect(auth.entry.category == .auth)
        guard case .integration = auth.entry.becomes else { Issue.record("generic auth must be an integration"); return }
        #expect(auth.note != nil)
        let byLabel = Catalogue.resolve(componentId: "thing", category: nil, label: "Stripe checkout", nodeType: nil)
        #expect(byLabel.entry.id == "stripe")
        #expect(byLabel.note?.contains("no known category") == true)
        // "Go" is a word of a label, not a substring of "Google".
        #expect(Catalogue.resolve(componentId: nil, category: nil, label: "Google sheet", nodeType: nil).entry.id != "go")
    }

    @Test func specNotesNameEachFallbackForTheLog() throws {
        let spec = try ArchitectureSpec(json: [
            "nodes": [["id": "a", "type": "postgres", "data": ["label": "DB", "componentId": "postgres", "category": "database"]],
                      ["id": "b", "type": "custom", "data": ["label": "Login", "componentId": "auth", "category": "auth"]],
                      ["id": "c", "type": "custom", "data": ["label": "API", "componentId": "fastapi", "category": "backend"]]],
            "edges": [["id": "e", "source": "c", "target": "a"]],
        ], fallbackName: "x")
        #expect(spec.notes.count == 2)
        #expect(spec.notes.allSatisfy { $0.hasPrefix("node a:") || $0.hasPrefix("node b:") })
        #expect(spec.component("a")?.kind == "database", "the main editor's type is the componentId, not the kind")
    }

    @Test func instructionsAndGeminiUseTheCatalogue() throws {
        let spec = try ArchitectureSpec(json: try TestEnv.exampleSpec("architex-app-mixed.json"), fallbackName: "x")
        let md = Instructions.markdown(for: spec)
        #expect(md.contains("Build a booking platform where hosts list rooms"), "the spec's prompt")
        for c in spec.components {
            #expect(md.contains("| \(c.name) | \(c.entry.name) (`\(c.componentId)`) | \(c.entry.category.rawValue) |"))
        }
        #expect(md.contains(Catalogue.entry("stripe")!.summary))
        #expect(md.contains(Catalogue.rules))
        let body = GeminiGenerator(settings: try RunnerConfiguration(environment: Harness.minimalConfig).child, route: GeminiRoute(socketPath: "/nonexistent", token: "t"), log: { _ in })
            .requestBody(instructions: md, spec: spec.normalizedJSON.jsonString)
        let system = body["systemInstruction"]?["parts"]?.arrayValue?.first?["text"]?.stringValue ?? ""
        #expect(system.contains(Catalogue.rules))
        #expect(spec.normalizedJSON["components"]?.arrayValue?.first?["becomes"]?.stringValue?.contains("starter") == true)
    }
}
