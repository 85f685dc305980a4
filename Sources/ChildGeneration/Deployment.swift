/// Hosting and CI/CD nodes become their files, for the apps they serve.
enum Deployment {
    typealias Files = [(String, String)]

    static func hosting(_ target: Hosting, _ c: Component, plan: ScaffoldPlan) -> Files {
        let frontFirst = [.vercel, .netlify, .cloudflare].contains(target)
        let apps = plan.targets(of: c, frontendsOnly: frontFirst)
        switch target {
        case .vercel:
            return apps.map { a in
                ("\(a.component.slug)/vercel.json", "{\n  \"$schema\": \"https://openapi.vercel.sh/vercel.json\",\n"
                    + (a.framework == .nextjs ? "  \"framework\": \"nextjs\",\n" : "")
                    + "  \"buildCommand\": \"\(buildCommand(a))\",\n  \"installCommand\": \"npm install\"\n}\n")
            }
        case .netlify:
            return apps.map { a in
                ("\(a.component.slug)/netlify.toml", "[build]\n  command = \"\(buildCommand(a))\"\n  publish = \"\(publishDir(a))\"\n\n[build.environment]\n  NODE_VERSION = \"20\"\n")
            }
        case .cloudflare:
            return apps.map { a in
                ("\(a.component.slug)/wrangler.toml", "name = \"\(a.component.slug)\"\ncompatibility_date = \"2024-06-01\"\npages_build_output_dir = \"\(publishDir(a))\"\n")
            }
        case .fly:
            return apps.map { a in
                ("\(a.component.slug)/fly.toml", "app = \"\(a.component.slug)\"\nprimary_region = \"iad\"\n\n[build]\n  dockerfile = \"Dockerfile\"\n\n[env]\n  PORT = \"\(a.port)\"\n\n[http_service]\n  internal_port = \(a.port)\n  force_https = true\n  auto_stop_machines = true\n  auto_start_machines = true\n\n[[http_service.checks]]\n  path = \"\(healthPath(a))\"\n  interval = \"30s\"\n  timeout = \"5s\"\n")
            }
        case .railway:
            return apps.map { a in
                ("\(a.component.slug)/railway.json", "{\n  \"$schema\": \"https://railway.app/railway.schema.json\",\n  \"build\": { \"builder\": \"DOCKERFILE\", \"dockerfilePath\": \"Dockerfile\" },\n  \"deploy\": { \"healthcheckPath\": \"\(healthPath(a))\", \"restartPolicyType\": \"ON_FAILURE\" }\n}\n")
            }
        case .render:
            var y = "services:\n"
            for a in apps {
                y += "  - type: web\n    name: \(a.component.slug)\n    runtime: docker\n    rootDir: \(a.component.slug)\n"
                y += "    healthCheckPath: \(healthPath(a))\n    envVars:\n      - key: PORT\n        value: \"\(a.port)\"\n"
                for v in a.env { y += "      - key: \(v.name)\n        sync: false\n" }
            }
            return [("render.yaml", y)]
        case .digitalocean:
            var y = "name: \(ArchitectureSpec.slug(plan.spec.name).isEmpty ? "app" : ArchitectureSpec.slug(plan.spec.name))\nservices:\n"
            for a in apps {
                y += "  - name: \(a.component.slug)\n    source_dir: \(a.component.slug)\n    dockerfile_path: \(a.component.slug)/Dockerfile\n"
                y += "    http_port: \(a.port)\n    health_check:\n      http_path: \(healthPath(a))\n"
            }
            return [(".do/app.yaml", y)]
        case .gcp:
            var files: Files = []
            var steps = "steps:\n"
            for a in apps {
                let s = a.component.slug
                files.append(("deploy/gcp/\(s).service.yaml", "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: \(s)\nspec:\n  template:\n    spec:\n      containers:\n        - image: REGION-docker.pkg.dev/PROJECT_ID/app/\(s)\n          ports:\n            - containerPort: \(a.port)\n"))
                steps += "  - name: gcr.io/cloud-builders/docker\n    args: [\"build\", \"-t\", \"REGION-docker.pkg.dev/PROJECT_ID/app/\(s)\", \"\(s)\"]\n"
                steps += "  - name: gcr.io/cloud-builders/docker\n    args: [\"push\", \"REGION-docker.pkg.dev/PROJECT_ID/app/\(s)\"]\n"
                steps += "  - name: gcr.io/google.com/cloudsdktool/cloud-sdk\n    entrypoint: gcloud\n    args: [\"run\", \"services\", \"replace\", \"deploy/gcp/\(s).service.yaml\", \"--region\", \"REGION\"]\n"
            }
            return files + [("deploy/gcp/cloudbuild.yaml", steps)]
        case .azure:
            return apps.map { a in
                ("deploy/azure/\(a.component.slug).containerapp.yaml", "properties:\n  configuration:\n    ingress:\n      external: true\n      targetPort: \(a.port)\n  template:\n    containers:\n      - name: \(a.component.slug)\n        image: REGISTRY.azurecr.io/\(a.component.slug):latest\n        resources:\n          cpu: 0.5\n          memory: 1Gi\n")
            }
        case .awsEC2:
            let script = "#!/bin/bash\n# EC2 user data: installs Docker and starts the stack with docker compose.\nset -euo pipefail\ndnf install -y docker git\nsystemctl enable --now docker\nmkdir -p /usr/local/lib/docker/cli-plugins\ncurl -fsSL https://github.com/docker/compose/releases/latest/download/docker-compose-linux-x86_64 -o /usr/local/lib/docker/cli-plugins/docker-compose\nchmod +x /usr/local/lib/docker/cli-plugins/docker-compose\ngit clone \"${REPO_URL}\" /opt/app\ncd /opt/app\ndocker compose up -d --build\n"
            return [("deploy/aws-ec2/user-data.sh", script),
                    ("deploy/aws-ec2/README.md", "# AWS EC2\n\nLaunch an Amazon Linux 2023 instance with `user-data.sh` as its user data (set `REPO_URL` first). It runs the root `docker-compose.yml`: "
                        + apps.map(\.component.name).joined(separator: ", ") + ".\n")]
        }
    }

    static func buildCommand(_ a: ScaffoldPlan.App) -> String { a.framework.language == .node ? "npm run build" : "" }

    static func publishDir(_ a: ScaffoldPlan.App) -> String {
        switch a.framework {
        case .nextjs: ".next"
        case .astro, .react, .vue, .solid, .angular: "dist"
        case .remix: "build/client"
        case .nuxt: ".output/public"
        case .svelte: "build"
        default: "public"
        }
    }

    static func healthPath(_ a: ScaffoldPlan.App) -> String {
        switch a.framework {
        case .nextjs: "/api/health"
        case .nuxt: "/api/health"
        case .react, .vue, .solid, .angular, .astro: "/"
        default: "/health"
        }
    }

    // MARK: CI/CD

    /// Per app: the image a CI job runs in and its build steps.
    static func steps(_ a: ScaffoldPlan.App) -> (image: String, commands: [String]) {
        switch a.framework.language {
        case .node:
            return ("node:20", ["npm install", a.framework == .nodejs || a.framework == .express ? "node --check src/index.js" : "npm run build"])
        case .python: return ("python:3.12", ["pip install -r requirements.txt", "python -m compileall -q ."])
        case .go: return ("golang:1.22", ["go mod tidy", "go build ./...", "go vet ./..."])
        case .java: return ("maven:3.9-eclipse-temurin-21", ["mvn -B package"])
        case .ruby: return ("ruby:3.3", ["bundle install"])
        case .php: return ("composer:2", ["composer install --no-interaction --ignore-platform-reqs"])
        }
    }

    static func pipeline(_ p: Pipeline, _ c: Component, plan: ScaffoldPlan) -> Files {
        let apps = plan.targets(of: c, frontendsOnly: false)
        switch p {
        case .githubActions:
            var y = "name: CI\n\non:\n  push:\n    branches: [main]\n  pull_request:\n\njobs:\n"
            for a in apps {
                let (image, cmds) = steps(a)
                y += "  \(a.component.slug):\n    runs-on: ubuntu-latest\n    container: \(image)\n    defaults:\n      run:\n        working-directory: \(a.component.slug)\n"
                y += "    steps:\n      - uses: actions/checkout@v4\n" + cmds.map { "      - run: \($0)\n" }.joined()
            }
            y += "  compose:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: docker compose config --quiet\n"
            return [(".github/workflows/ci.yml", y)]
        case .gitlabCI:
            var y = "stages: [build]\n\n"
            for a in apps {
                let (image, cmds) = steps(a)
                y += "\(a.component.slug):\n  stage: build\n  image: \(image)\n  script:\n    - cd \(a.component.slug)\n" + cmds.map { "    - \($0)\n" }.joined() + "\n"
            }
            return [(".gitlab-ci.yml", y)]
        case .circleCI:
            var y = "version: 2.1\n\njobs:\n"
            for a in apps {
                let (image, cmds) = steps(a)
                y += "  \(a.component.slug):\n    docker:\n      - image: \(image)\n    working_directory: ~/repo\n    steps:\n      - checkout\n"
                y += cmds.map { "      - run: cd \(a.component.slug) && \($0)\n" }.joined()
            }
            y += "\nworkflows:\n  build:\n    jobs:\n" + apps.map { "      - \($0.component.slug)\n" }.joined()
            return [(".circleci/config.yml", y)]
        case .jenkins:
            var g = "pipeline {\n  agent any\n  stages {\n"
            for a in apps {
                let (image, cmds) = steps(a)
                g += "    stage('\(a.component.slug)') {\n      agent { docker { image '\(image)' } }\n      steps {\n        dir('\(a.component.slug)') {\n"
                g += cmds.map { "          sh '\($0)'\n" }.joined() + "        }\n      }\n    }\n"
            }
            return [("Jenkinsfile", g + "  }\n}\n")]
        case .argoCD:
            var files: Files = [("deploy/argocd/application.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: \(appName(plan))\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: REPLACE_WITH_REPOSITORY_URL\n    targetRevision: main\n    path: deploy/k8s\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: \(appName(plan))\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n")]
            for a in apps {
                let s = a.component.slug
                files.append(("deploy/k8s/\(s).yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \(s)\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: \(s)\n  template:\n    metadata:\n      labels:\n        app: \(s)\n    spec:\n      containers:\n        - name: \(s)\n          image: REGISTRY/\(s):latest\n          ports:\n            - containerPort: \(a.port)\n          env:\n            - name: PORT\n              value: \"\(a.port)\"\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: \(s)\nspec:\n  selector:\n    app: \(s)\n  ports:\n    - port: \(a.port)\n      targetPort: \(a.port)\n"))
            }
            return files
        case .terraform:
            let main = "terraform {\n  required_version = \">= 1.6\"\n}\n\n# One entry per deployable service of the diagram; point each at your\n# provider's container service.\nlocals {\n  services = {\n" + apps.map { "    \"\($0.component.slug)\" = { port = \($0.port) }\n" }.joined() + "  }\n}\n"
            return [("infra/terraform/main.tf", main),
                    ("infra/terraform/variables.tf", "variable \"environment\" {\n  type    = string\n  default = \"dev\"\n}\n\nvariable \"region\" {\n  type    = string\n  default = \"us-east-1\"\n}\n"),
                    ("infra/terraform/outputs.tf", "output \"services\" {\n  value = local.services\n}\n")]
        }
    }

    static func appName(_ plan: ScaffoldPlan) -> String {
        let s = ArchitectureSpec.slug(plan.spec.name)
        return s.isEmpty ? "app" : s
    }
}
