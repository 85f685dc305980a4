/// The frameworks (backend and frontend categories): each becomes a runnable
/// starter in its own language and idiom (Starters+Backend/Frontend.swift).
public enum Framework: String, Sendable, CaseIterable {
    case fastapi, express, nodejs, django, flask, spring, nestjs, go, rails, laravel
    case react, nextjs, vue, svelte, angular, solid, astro, remix, nuxt

    public var language: Language {
        switch self {
        case .fastapi, .django, .flask: .python
        case .spring: .java
        case .go: .go
        case .rails: .ruby
        case .laravel: .php
        default: .node
        }
    }

    public var isFrontend: Bool {
        [.react, .nextjs, .vue, .svelte, .angular, .solid, .astro, .remix, .nuxt].contains(self)
    }

    /// Frontends that also run server code (server-only SDKs may live there).
    var rendersOnServer: Bool { [.nextjs, .remix, .nuxt, .astro, .svelte].contains(self) }

    /// How the starter is built, in a few words.
    public var idiom: String {
        switch self {
        case .fastapi: "FastAPI app served by uvicorn, requirements.txt"
        case .express: "Express app (ES modules), package.json"
        case .nodejs: "Node.js http server (ES modules), package.json"
        case .django: "Django project with a health view, requirements.txt, manage.py"
        case .flask: "Flask app served by gunicorn, requirements.txt"
        case .spring: "Spring Boot web app, Maven pom.xml"
        case .nestjs: "NestJS app in TypeScript, package.json, tsconfig.json"
        case .go: "Go net/http server, go.mod"
        case .rails: "Rails API app (config.ru), Gemfile"
        case .laravel: "Laravel app (routes/api.php), composer.json"
        case .react: "React app built with Vite"
        case .nextjs: "Next.js app router with an API route, package.json with next"
        case .vue: "Vue 3 app built with Vite"
        case .svelte: "SvelteKit app"
        case .angular: "Angular standalone app, angular.json"
        case .solid: "SolidJS app built with Vite"
        case .astro: "Astro site"
        case .remix: "Remix app built with Vite"
        case .nuxt: "Nuxt 3 app with a server API route"
        }
    }
}

/// An environment variable with a value; `{host}` stands for the compose service name.
public struct EnvVar: Sendable, Hashable {
    public let name: String
    public let value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
    func value(host: String) -> String { value.replacingOccurrences(of: "{host}", with: host) }
}

/// Infrastructure (databases, caches, queues, search, object storage): a
/// docker-compose service with an official image, a volume and a healthcheck;
/// a managed-only service is configuration plus its local stand-in, if any.
public struct Infra: Sendable {
    /// The image, or nil when nothing runs locally (configuration only).
    public var image: String?
    public var port: Int = 0
    /// The image stands in locally for a managed service.
    public var standIn = false
    public var command: String?
    public var environment: [EnvVar] = []
    /// Where the service keeps its data, mounted from a named volume.
    public var volume: String?
    /// A `CMD-SHELL` healthcheck.
    public var healthcheck: String?
    /// What a connected service is given.
    public var connection: [EnvVar]
    /// The client library a connected service gets.
    public var client: Client?
}

/// SaaS (auth, payments, email, ml, monitoring): an integration module with
/// the SDK in each connected service and its variables in `.env.example`.
public struct Integration: Sendable {
    /// Variables and their `.env.example` placeholders (never real secrets).
    public var env: [(String, String)]
    /// The server-side SDK per language.
    public var sdks: [Language: SDK]
    /// The browser SDK, for frontends.
    public var web: SDK?
    /// The Next.js SDK, where the product has its own.
    public var next: SDK?
    /// A self-hostable product also gets a local compose service.
    public var localService: Infra?
    init(env: [(String, String)], sdks: [Language: SDK], web: SDK?, next: SDK? = nil, localService: Infra? = nil) {
        self.env = env
        self.sdks = sdks
        self.web = web
        self.next = next
        self.localService = localService
    }
}

/// One SDK: its packages and the code that sets it up (nil: the package alone).
public struct SDK: Sendable {
    public var packages: [Package]
    /// Import lines (ES modules for JavaScript).
    public var imports: String
    /// Statements that configure and export a client from environment variables.
    public var setup: String
    init(_ packages: [Package], _ imports: String = "", _ setup: String = "") {
        self.packages = packages
        self.imports = imports
        self.setup = setup
    }
}

/// Hosting targets and the files each becomes.
public enum Hosting: String, Sendable {
    case vercel, netlify, awsEC2, gcp, azure, railway, render, digitalocean, fly, cloudflare
    public var files: String {
        switch self {
        case .vercel: "vercel.json in each deployed app"
        case .netlify: "netlify.toml in each deployed app"
        case .awsEC2: "deploy/aws-ec2/ (user-data.sh, README)"
        case .gcp: "deploy/gcp/ (Cloud Run service.yaml, cloudbuild.yaml)"
        case .azure: "deploy/azure/containerapp.yaml"
        case .railway: "railway.json in each deployed service"
        case .render: "render.yaml blueprint"
        case .digitalocean: ".do/app.yaml"
        case .fly: "fly.toml in each deployed service"
        case .cloudflare: "wrangler.toml in each deployed app"
        }
    }
}

/// CI/CD and infrastructure-as-code: the files each becomes.
public enum Pipeline: String, Sendable {
    case githubActions, gitlabCI, circleCI, jenkins, argoCD, terraform
    public var files: String {
        switch self {
        case .githubActions: ".github/workflows/ci.yml"
        case .gitlabCI: ".gitlab-ci.yml"
        case .circleCI: ".circleci/config.yml"
        case .jenkins: "Jenkinsfile"
        case .argoCD: "deploy/argocd/application.yaml and deploy/k8s/ manifests"
        case .terraform: "infra/terraform/ skeleton (main.tf, variables.tf, outputs.tf)"
        }
    }
}
