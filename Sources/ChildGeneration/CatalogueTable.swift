/// The table itself: every `componentId` of the Architex palette (14
/// categories), in the palette's order.
extension Catalogue {
    static func f(_ id: String, _ cat: Category, _ name: String, _ fw: Framework) -> CatalogueEntry {
        CatalogueEntry(id: id, category: cat, name: name, becomes: .framework(fw))
    }

    static func i(_ id: String, _ cat: Category, _ name: String, _ infra: Infra) -> CatalogueEntry {
        CatalogueEntry(id: id, category: cat, name: name, becomes: .infrastructure(infra))
    }

    static func s(_ id: String, _ cat: Category, _ name: String) -> CatalogueEntry {
        CatalogueEntry(id: id, category: cat, name: name, becomes: .integration(IntegrationTable.all[id]!))
    }

    static func h(_ id: String, _ name: String, _ target: Hosting) -> CatalogueEntry {
        CatalogueEntry(id: id, category: .hosting, name: name, becomes: .hosting(target))
    }

    static func c(_ id: String, _ name: String, _ p: Pipeline) -> CatalogueEntry {
        CatalogueEntry(id: id, category: .cicd, name: name, becomes: .pipeline(p))
    }

    static let table: [CatalogueEntry] = [
        f("fastapi", .backend, "FastAPI", .fastapi), f("express", .backend, "Express", .express),
        f("nodejs", .backend, "Node.js", .nodejs), f("django", .backend, "Django", .django),
        f("flask", .backend, "Flask", .flask), f("spring", .backend, "Spring Boot", .spring),
        f("nestjs", .backend, "NestJS", .nestjs), f("go", .backend, "Go", .go),
        f("rails", .backend, "Ruby on Rails", .rails), f("laravel", .backend, "Laravel", .laravel),

        f("react", .frontend, "React", .react), f("nextjs", .frontend, "Next.js", .nextjs),
        f("vue", .frontend, "Vue", .vue), f("svelte", .frontend, "Svelte", .svelte),
        f("angular", .frontend, "Angular", .angular), f("solid", .frontend, "SolidJS", .solid),
        f("astro", .frontend, "Astro", .astro), f("remix", .frontend, "Remix", .remix), f("nuxt", .frontend, "Nuxt", .nuxt),

        i("postgresql", .database, "PostgreSQL", InfraTable.postgres()),
        i("mysql", .database, "MySQL", InfraTable.mysql()),
        i("mongodb", .database, "MongoDB", InfraTable.mongodb),
        i("supabase", .database, "Supabase", {
            var pg = InfraTable.postgres(image: "supabase/postgres:15.1.1.78", standIn: true)
            pg.connection += [.init("SUPABASE_URL", "https://your-project.supabase.co"), .init("SUPABASE_ANON_KEY", "")]
            pg.client = .supabase
            return pg
        }()),
        i("firebase", .database, "Firebase", InfraTable.managed(
            [.init("FIREBASE_PROJECT_ID", ""), .init("GOOGLE_APPLICATION_CREDENTIALS", "./service-account.json")], client: .firebase)),
        i("redis", .database, "Redis", InfraTable.redis()),
        i("dynamodb", .database, "DynamoDB", InfraTable.dynamodb),
        i("planetscale", .database, "PlanetScale", InfraTable.mysql(standIn: true)),
        i("sqlite", .database, "SQLite", InfraTable.managed([.init("DATABASE_URL", "file:./data/app.db")], client: .sqlite)),
        i("cockroachdb", .database, "CockroachDB", InfraTable.cockroach),

        h("vercel", "Vercel", .vercel), h("netlify", "Netlify", .netlify), h("aws-ec2", "AWS EC2", .awsEC2),
        h("gcp", "Google Cloud", .gcp), h("azure", "Azure", .azure), h("railway", "Railway", .railway),
        h("render", "Render", .render), h("digitalocean", "DigitalOcean", .digitalocean), h("fly", "Fly.io", .fly),
        h("cloudflare", "Cloudflare", .cloudflare),

        s("openai", .ml, "OpenAI"), s("anthropic", .ml, "Anthropic"), s("huggingface", .ml, "Hugging Face"),
        s("tensorflow", .ml, "TensorFlow"), s("pytorch", .ml, "PyTorch"), s("langchain", .ml, "LangChain"),
        s("replicate", .ml, "Replicate"), s("together", .ml, "Together AI"),

        s("auth0", .auth, "Auth0"), s("clerk", .auth, "Clerk"), s("firebase-auth", .auth, "Firebase Auth"),
        s("supabase-auth", .auth, "Supabase Auth"), s("nextauth", .auth, "NextAuth.js"), s("cognito", .auth, "AWS Cognito"),
        s("okta", .auth, "Okta"), s("keycloak", .auth, "Keycloak"),

        i("redis-cache", .cache, "Redis Cache", InfraTable.redis()),
        i("memcached", .cache, "Memcached", InfraTable.memcached),
        i("cloudflare-cdn", .cache, "Cloudflare CDN", InfraTable.managed(
            [.init("CDN_URL", "https://cdn.example.com"), .init("CLOUDFLARE_ZONE_ID", "")], client: nil)),
        i("cloudfront", .cache, "CloudFront", InfraTable.managed(
            [.init("CDN_URL", "https://dxxxxxxxx.cloudfront.net"), .init("CLOUDFRONT_DISTRIBUTION_ID", "")], client: nil)),
        i("fastly", .cache, "Fastly", InfraTable.managed(
            [.init("CDN_URL", "https://example.global.ssl.fastly.net"), .init("FASTLY_SERVICE_ID", "")], client: nil)),

        i("rabbitmq", .queue, "RabbitMQ", InfraTable.rabbitmq), i("kafka", .queue, "Apache Kafka", InfraTable.kafka),
        i("sqs", .queue, "AWS SQS", InfraTable.sqs), i("redis-pubsub", .queue, "Redis Pub/Sub", InfraTable.redis()),
        i("pubsub", .queue, "Google Pub/Sub", InfraTable.pubsub), i("nats", .queue, "NATS", InfraTable.nats),

        i("s3", .storage, "AWS S3", InfraTable.minio([], standIn: true)),
        i("gcs", .storage, "Google Cloud Storage", InfraTable.gcs),
        i("azure-blob", .storage, "Azure Blob Storage", InfraTable.azurite),
        i("cloudflare-r2", .storage, "Cloudflare R2", InfraTable.minio([.init("R2_ACCOUNT_ID", "")], standIn: true)),
        i("supabase-storage", .storage, "Supabase Storage", InfraTable.managed(
            [.init("SUPABASE_URL", "https://your-project.supabase.co"), .init("SUPABASE_SERVICE_ROLE_KEY", ""),
             .init("SUPABASE_BUCKET", "app")], client: .supabase)),
        i("minio", .storage, "MinIO", InfraTable.minio([], standIn: false)),

        c("github-actions", "GitHub Actions", .githubActions), c("gitlab-ci", "GitLab CI", .gitlabCI),
        c("circleci", "CircleCI", .circleCI), c("jenkins", "Jenkins", .jenkins), c("argocd", "Argo CD", .argoCD),
        c("terraform", "Terraform", .terraform),

        s("sentry", .monitoring, "Sentry"), s("datadog", .monitoring, "Datadog"), s("newrelic", .monitoring, "New Relic"),
        s("prometheus", .monitoring, "Prometheus"), s("grafana", .monitoring, "Grafana"), s("logrocket", .monitoring, "LogRocket"),

        i("elasticsearch", .search, "Elasticsearch", InfraTable.elasticsearch),
        i("algolia", .search, "Algolia", InfraTable.managed(
            [.init("ALGOLIA_APP_ID", ""), .init("ALGOLIA_API_KEY", ""), .init("ALGOLIA_INDEX", "app")], client: .algolia)),
        i("meilisearch", .search, "Meilisearch", InfraTable.meilisearch),
        i("typesense", .search, "Typesense", InfraTable.typesense),
        i("opensearch", .search, "OpenSearch", InfraTable.opensearch),

        s("stripe", .payments, "Stripe"), s("paypal", .payments, "PayPal"), s("square", .payments, "Square"),
        s("lemonsqueezy", .payments, "Lemon Squeezy"),

        s("resend", .email, "Resend"), s("sendgrid", .email, "SendGrid"), s("mailgun", .email, "Mailgun"),
        s("postmark", .email, "Postmark"), s("ses", .email, "Amazon SES"),
    ]
}
