/// Runnable starters for the backend frameworks, each in its own language and
/// idiom, with a `/health` route that lists the connections it was wired to.
enum BackendStarters {
    typealias Files = [(String, String)]

    static func files(_ app: ScaffoldPlan.App) -> Files {
        let mods = app.integrations.map { Manifests.integration($0.0, sdk: $0.1, app: app) }
        switch app.framework {
        case .fastapi: return fastapi(app) + mods + pyInit(mods)
        case .flask: return flask(app) + mods + pyInit(mods)
        case .django: return django(app) + mods + pyInit(mods)
        case .express: return express(app) + mods
        case .nodejs: return nodejs(app) + mods
        case .nestjs: return nestjs(app) + mods
        case .go: return goStarter(app) + mods
        case .spring: return spring(app) + mods
        case .rails: return rails(app) + mods
        case .laravel: return laravel(app) + mods
        default: return []
        }
    }

    static func pyInit(_ mods: Files) -> Files { mods.isEmpty ? [] : [("integrations/__init__.py", "")] }

    static func names(_ app: ScaffoldPlan.App) -> [String] { app.env.map(\.name) }

    static func readme(_ app: ScaffoldPlan.App, run: String) -> (String, String) {
        let c = app.component
        var md = "# \(c.name)\n\n\(app.framework.idiom) (\(c.entry.name)).\n\n"
        if !app.env.isEmpty {
            md += "Configuration (set by the root `docker-compose.yml`; see `.env.example`):\n\n"
            md += app.env.map { "- `\($0.name)`" + ($0.value.isEmpty ? "" : " (local: `\($0.value)`)") }.joined(separator: "\n") + "\n\n"
        }
        if !app.integrations.isEmpty {
            md += "Integrations: " + app.integrations.map { $0.0.name }.joined(separator: ", ") + ".\n\n"
        }
        return ("README.md", md + "Run alone:\n\n```sh\n\(run)\n```\n")
    }

    static func fastapi(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        return [
            readme(app, run: "pip install -r requirements.txt\nuvicorn main:app --reload --port \(p)"),
            ("requirements.txt", Manifests.requirements([Package("fastapi", "0.111.0"), Package("uvicorn[standard]", "0.30.1")],
                                                        extra: app.packages)),
            ("main.py", """
            import os

            from fastapi import FastAPI

            app = FastAPI(title="\(app.component.slug)")

            CONNECTIONS = [\(names(app).map { "\"\($0)\"" }.joined(separator: ", "))]


            @app.get("/health")
            def health():
                return {"status": "ok", "service": "\(app.component.slug)",
                        "configured": [name for name in CONNECTIONS if os.environ.get(name)]}

            """),
            ("Dockerfile", "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nEXPOSE \(p)\nCMD [\"sh\", \"-c\", \"uvicorn main:app --host 0.0.0.0 --port ${PORT:-\(p)}\"]\n"),
        ]
    }

    static func flask(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        return [
            readme(app, run: "pip install -r requirements.txt\nflask --app app run --port \(p)"),
            ("requirements.txt", Manifests.requirements([Package("Flask", "3.0.3"), Package("gunicorn", "22.0.0")], extra: app.packages)),
            ("app.py", """
            import os

            from flask import Flask, jsonify

            app = Flask(__name__)

            CONNECTIONS = [\(names(app).map { "\"\($0)\"" }.joined(separator: ", "))]


            @app.get("/health")
            def health():
                return jsonify(status="ok", service="\(app.component.slug)",
                               configured=[name for name in CONNECTIONS if os.environ.get(name)])

            """),
            ("Dockerfile", "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nEXPOSE \(p)\nCMD [\"sh\", \"-c\", \"gunicorn -b 0.0.0.0:${PORT:-\(p)} app:app\"]\n"),
        ]
    }

    static func django(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        return [
            readme(app, run: "pip install -r requirements.txt\npython manage.py runserver \(p)"),
            ("requirements.txt", Manifests.requirements([Package("Django", "5.0.6"), Package("gunicorn", "22.0.0")], extra: app.packages)),
            ("manage.py", "#!/usr/bin/env python\nimport os\nimport sys\n\nif __name__ == \"__main__\":\n    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"project.settings\")\n    from django.core.management import execute_from_command_line\n\n    execute_from_command_line(sys.argv)\n"),
            ("project/__init__.py", ""),
            ("project/settings.py", """
            import os

            SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-change-me")
            DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
            ALLOWED_HOSTS = ["*"]
            INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
            MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
            ROOT_URLCONF = "project.urls"
            WSGI_APPLICATION = "project.wsgi.application"
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
            USE_TZ = True

            """),
            ("project/urls.py", """
            import os

            from django.http import JsonResponse
            from django.urls import path

            CONNECTIONS = [\(names(app).map { "\"\($0)\"" }.joined(separator: ", "))]


            def health(request):
                return JsonResponse({"status": "ok", "service": "\(app.component.slug)",
                                     "configured": [n for n in CONNECTIONS if os.environ.get(n)]})


            urlpatterns = [path("health", health)]

            """),
            ("project/wsgi.py", "import os\n\nfrom django.core.wsgi import get_wsgi_application\n\nos.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"project.settings\")\napplication = get_wsgi_application()\n"),
            ("Dockerfile", "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\nEXPOSE \(p)\nCMD [\"sh\", \"-c\", \"gunicorn -b 0.0.0.0:${PORT:-\(p)} project.wsgi\"]\n"),
        ]
    }

    static func jsHealth(_ app: ScaffoldPlan.App) -> String {
        "const connections = [\(names(app).map { "\"\($0)\"" }.joined(separator: ", "))];\n"
    }

    static func express(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        return [
            readme(app, run: "npm install\nnpm start"),
            ("package.json", Manifests.packageJSON(app.component.slug, scripts: [("start", "node src/index.js")],
                                                   base: [Package("express", "^4.19.2")], extra: app.packages)),
            ("src/index.js", "import express from \"express\";\n\n" + jsHealth(app) + """
            const app = express();
            app.use(express.json());

            app.get("/health", (req, res) => {
              res.json({ status: "ok", service: "\(app.component.slug)", configured: connections.filter((n) => process.env[n]) });
            });

            const port = Number(process.env.PORT ?? \(p));
            app.listen(port, () => console.log(`\(app.component.slug) listening on :${port}`));

            """),
            ("Dockerfile", nodeDockerfile(p, start: "node src/index.js")),
        ]
    }

    static func nodejs(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        return [
            readme(app, run: "npm install\nnpm start"),
            ("package.json", Manifests.packageJSON(app.component.slug, scripts: [("start", "node src/index.js")], base: [],
                                                   extra: app.packages)),
            ("src/index.js", "import http from \"node:http\";\n\n" + jsHealth(app) + """
            const server = http.createServer((req, res) => {
              res.setHeader("content-type", "application/json");
              if (req.url === "/health") {
                return res.end(JSON.stringify({ status: "ok", service: "\(app.component.slug)", configured: connections.filter((n) => process.env[n]) }));
              }
              res.statusCode = 404;
              res.end(JSON.stringify({ error: "not found" }));
            });

            const port = Number(process.env.PORT ?? \(p));
            server.listen(port, () => console.log(`\(app.component.slug) listening on :${port}`));

            """),
            ("Dockerfile", nodeDockerfile(p, start: "node src/index.js")),
        ]
    }

    static func nestjs(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        return [
            readme(app, run: "npm install\nnpm run build && npm start"),
            ("package.json", Manifests.packageJSON(app.component.slug, scripts: [("build", "tsc -p tsconfig.json"), ("start", "node dist/main.js")],
                                                   base: [Package("@nestjs/common", "^10.3.9"), Package("@nestjs/core", "^10.3.9"),
                                                          Package("@nestjs/platform-express", "^10.3.9"), Package("reflect-metadata", "^0.2.2"),
                                                          Package("rxjs", "^7.8.1")],
                                                   dev: [Package("@types/node", "^20.14.9"), Package("typescript", "^5.5.2")],
                                                   extra: app.packages, module: false)),
            ("tsconfig.json", "{\n  \"compilerOptions\": {\n    \"module\": \"commonjs\",\n    \"target\": \"es2021\",\n    \"outDir\": \"dist\",\n    \"rootDir\": \"src\",\n    \"experimentalDecorators\": true,\n    \"emitDecoratorMetadata\": true,\n    \"esModuleInterop\": true,\n    \"skipLibCheck\": true\n  },\n  \"include\": [\"src\"]\n}\n"),
            ("src/main.ts", """
            import "reflect-metadata";
            import { NestFactory } from "@nestjs/core";
            import { AppModule } from "./app.module";

            async function bootstrap() {
              const app = await NestFactory.create(AppModule);
              await app.listen(Number(process.env.PORT ?? \(p)));
            }
            bootstrap();

            """),
            ("src/app.module.ts", "import { Module } from \"@nestjs/common\";\nimport { HealthController } from \"./health.controller\";\n\n@Module({ controllers: [HealthController] })\nexport class AppModule {}\n"),
            ("src/health.controller.ts", "import { Controller, Get } from \"@nestjs/common\";\n\n" + jsHealth(app) + """

            @Controller()
            export class HealthController {
              @Get("health")
              health() {
                return { status: "ok", service: "\(app.component.slug)", configured: connections.filter((n) => process.env[n]) };
              }
            }

            """),
            ("Dockerfile", "FROM node:20-slim\nWORKDIR /app\nCOPY package.json .\nRUN npm install\nCOPY . .\nRUN npm run build\nEXPOSE \(p)\nCMD [\"node\", \"dist/main.js\"]\n"),
        ]
    }

    static func nodeDockerfile(_ port: Int, start: String) -> String {
        "FROM node:20-slim\nWORKDIR /app\nCOPY package.json .\nRUN npm install --omit=dev\nCOPY . .\nEXPOSE \(port)\nCMD [" +
            start.split(separator: " ").map { "\"\($0)\"" }.joined(separator: ", ") + "]\n"
    }

    static func goStarter(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        let list = names(app).map { "\"\($0)\"" }.joined(separator: ", ")
        return [
            readme(app, run: "go mod tidy\ngo run ."),
            ("go.mod", Manifests.goMod(app.component.slug, extra: app.packages)),
            ("main.go", """
            package main

            import (
            \t"encoding/json"
            \t"log"
            \t"net/http"
            \t"os"
            )

            var connections = []string{\(list)}

            func main() {
            \tport := os.Getenv("PORT")
            \tif port == "" {
            \t\tport = "\(p)"
            \t}
            \thttp.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
            \t\tconfigured := []string{}
            \t\tfor _, name := range connections {
            \t\t\tif os.Getenv(name) != "" {
            \t\t\t\tconfigured = append(configured, name)
            \t\t\t}
            \t\t}
            \t\tw.Header().Set("Content-Type", "application/json")
            \t\tjson.NewEncoder(w).Encode(map[string]any{"status": "ok", "service": "\(app.component.slug)", "configured": configured})
            \t})
            \tlog.Printf("\(app.component.slug) listening on :%s", port)
            \tlog.Fatal(http.ListenAndServe(":"+port, nil))
            }

            """),
            ("Dockerfile", "FROM golang:1.22 AS build\nWORKDIR /src\nCOPY . .\nRUN go mod tidy && CGO_ENABLED=0 go build -o /app .\n\nFROM gcr.io/distroless/static-debian12\nCOPY --from=build /app /app\nEXPOSE \(p)\nCMD [\"/app\"]\n"),
        ]
    }
}
