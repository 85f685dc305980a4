/// Runnable starters for the frontend frameworks. Each shows its name and the
/// backends it calls (their URLs come from the environment at build time).
enum FrontendStarters {
    typealias Files = [(String, String)]

    static func files(_ app: ScaffoldPlan.App) -> Files {
        let mods = app.integrations.map { Manifests.integration($0.0, sdk: $0.1, app: app) }
        let f: Files
        switch app.framework {
        case .react: f = vite(app, plugin: ("@vitejs/plugin-react", "^4.3.1", "react"), base: react, entry: reactEntry(app))
        case .vue: f = vite(app, plugin: ("@vitejs/plugin-vue", "^5.0.5", "vue"), base: [Package("vue", "^3.4.31")], entry: vueEntry(app))
        case .solid: f = vite(app, plugin: ("vite-plugin-solid", "^2.10.2", "solid"), base: [Package("solid-js", "^1.8.18")],
                              entry: solidEntry(app))
        case .nextjs: f = nextjs(app)
        case .svelte: f = svelte(app)
        case .angular: f = angular(app)
        case .astro: f = astro(app)
        case .remix: f = remix(app)
        case .nuxt: f = nuxt(app)
        default: f = []
        }
        return f + mods
    }

    static let react = [Package("react", "^18.3.1"), Package("react-dom", "^18.3.1")]

    /// The backends this app calls, as (name, variable).
    static func apis(_ app: ScaffoldPlan.App) -> [(String, String)] {
        app.env.filter { v in app.calls.contains { ScaffoldPlan.urlVariable(slugOnly: $0) == v.name } }
            .map { ($0.name.dropLast(4).lowercased().replacingOccurrences(of: "_", with: "-"), $0.name) }
    }

    static func title(_ app: ScaffoldPlan.App) -> String { htmlEscape(app.component.name) }

    static func readme(_ app: ScaffoldPlan.App, dev: String = "npm run dev") -> (String, String) {
        BackendStarters.readme(app, run: "npm install\n\(dev)")
    }

    static func dockerfile(_ app: ScaffoldPlan.App, build: Bool, start: String) -> (String, String) {
        ("Dockerfile", "FROM node:20-slim\nWORKDIR /app\nCOPY package.json .\nRUN npm install\nCOPY . .\n"
            + (build ? "RUN npm run build\n" : "") + "ENV HOST=0.0.0.0\nEXPOSE \(app.port)\nCMD [\"sh\", \"-c\", \"\(start)\"]\n")
    }

    // MARK: Vite (React, Vue, Solid)

    static func vite(_ app: ScaffoldPlan.App, plugin: (String, String, String), base: [Package], entry: Files) -> Files {
        let defines = apis(app).map { "    \"import.meta.env.\($0.1)\": JSON.stringify(process.env.\($0.1) ?? \"\"),\n" }.joined()
        let importName = plugin.2 == "react" ? "react" : plugin.2 == "vue" ? "vue" : "solid"
        return [
            readme(app),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("dev", "vite --port \(app.port)"), ("build", "vite build"), ("preview", "vite preview --host --port ${PORT:-\(app.port)}")],
                base: base, dev: [Package("vite", "^5.3.2"), Package(plugin.0, plugin.1)], extra: app.packages)),
            ("vite.config.js", "import { defineConfig } from \"vite\";\nimport \(importName) from \"\(plugin.0)\";\n\nexport default defineConfig({\n  plugins: [\(importName)()],\n  define: {\n\(defines)  },\n});\n"),
            ("index.html", "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\" />\n    <title>\(title(app))</title>\n  </head>\n  <body>\n    <div id=\"app\"></div>\n    <script type=\"module\" src=\"/src/main.js\"></script>\n  </body>\n</html>\n"),
            dockerfile(app, build: true, start: "npm run preview"),
        ] + entry
    }

    static func apiList(_ app: ScaffoldPlan.App, jsx: Bool) -> String {
        apis(app).map { "{ name: \"\($0.0)\", url: import.meta.env.\($0.1) }" }.joined(separator: ", ")
    }

    static func reactEntry(_ app: ScaffoldPlan.App) -> Files {
        [("src/main.js", "import { createElement } from \"react\";\nimport { createRoot } from \"react-dom/client\";\nimport App from \"./App.jsx\";\n\ncreateRoot(document.getElementById(\"app\")).render(createElement(App));\n"),
         ("src/App.jsx", "const apis = [\(apiList(app, jsx: true))];\n\nexport default function App() {\n  return (\n    <main>\n      <h1>\(title(app))</h1>\n      <ul>\n        {apis.map((a) => (\n          <li key={a.name}>{a.name}: {a.url}</li>\n        ))}\n      </ul>\n    </main>\n  );\n}\n")]
    }

    static func vueEntry(_ app: ScaffoldPlan.App) -> Files {
        [("src/main.js", "import { createApp } from \"vue\";\nimport App from \"./App.vue\";\n\ncreateApp(App).mount(\"#app\");\n"),
         ("src/App.vue", "<script setup>\nconst apis = [\(apiList(app, jsx: false))];\n</script>\n\n<template>\n  <main>\n    <h1>\(title(app))</h1>\n    <ul>\n      <li v-for=\"a in apis\" :key=\"a.name\">{{ a.name }}: {{ a.url }}</li>\n    </ul>\n  </main>\n</template>\n")]
    }

    static func solidEntry(_ app: ScaffoldPlan.App) -> Files {
        [("src/main.js", "import { render } from \"solid-js/web\";\nimport App from \"./App.jsx\";\n\nrender(App, document.getElementById(\"app\"));\n"),
         ("src/App.jsx", "import { For } from \"solid-js\";\n\nconst apis = [\(apiList(app, jsx: true))];\n\nexport default function App() {\n  return (\n    <main>\n      <h1>\(title(app))</h1>\n      <ul>\n        <For each={apis}>{(a) => <li>{a.name}: {a.url}</li>}</For>\n      </ul>\n    </main>\n  );\n}\n")]
    }

    // MARK: Next.js, SvelteKit, Angular, Astro, Remix, Nuxt

    static func serverApis(_ app: ScaffoldPlan.App) -> String {
        apis(app).map { "{ name: \"\($0.0)\", url: process.env.\($0.1) ?? \"\" }" }.joined(separator: ", ")
    }

    static func nextjs(_ app: ScaffoldPlan.App) -> Files {
        [
            readme(app),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("dev", "next dev -p \(app.port)"), ("build", "next build"), ("start", "next start -p ${PORT:-\(app.port)}")],
                base: [Package("next", "^14.2.4")] + react, extra: app.packages)),
            ("next.config.mjs", "/** @type {import('next').NextConfig} */\nconst nextConfig = { output: \"standalone\" };\n\nexport default nextConfig;\n"),
            ("app/layout.js", "export const metadata = { title: \"\(jsEscape(app.component.name))\" };\n\nexport default function RootLayout({ children }) {\n  return (\n    <html lang=\"en\">\n      <body>{children}</body>\n    </html>\n  );\n}\n"),
            ("app/page.js", "const apis = [\(serverApis(app))];\n\nexport default function Home() {\n  return (\n    <main>\n      <h1>\(title(app))</h1>\n      <ul>\n        {apis.map((a) => (\n          <li key={a.name}>{a.name}: {a.url}</li>\n        ))}\n      </ul>\n    </main>\n  );\n}\n"),
            ("app/api/health/route.js", "export function GET() {\n  return Response.json({ status: \"ok\", service: \"\(app.component.slug)\" });\n}\n"),
            dockerfile(app, build: true, start: "npm start"),
        ]
    }

    static func svelte(_ app: ScaffoldPlan.App) -> Files {
        [
            readme(app),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("dev", "vite dev --port \(app.port)"), ("build", "vite build"), ("start", "node build")],
                base: [], dev: [Package("@sveltejs/kit", "^2.5.17"), Package("@sveltejs/adapter-node", "^5.2.0"),
                                Package("@sveltejs/vite-plugin-svelte", "^3.1.1"), Package("svelte", "^4.2.18"), Package("vite", "^5.3.2")],
                extra: app.packages)),
            ("svelte.config.js", "import adapter from \"@sveltejs/adapter-node\";\n\nexport default { kit: { adapter: adapter() } };\n"),
            ("vite.config.js", "import { sveltekit } from \"@sveltejs/kit/vite\";\nimport { defineConfig } from \"vite\";\n\nexport default defineConfig({ plugins: [sveltekit()] });\n"),
            ("src/app.html", "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\" />\n    %sveltekit.head%\n  </head>\n  <body>\n    <div>%sveltekit.body%</div>\n  </body>\n</html>\n"),
            ("src/routes/+page.server.js", "import { env } from \"$env/dynamic/private\";\n\nexport function load() {\n  return { apis: [\(apis(app).map { "{ name: \"\($0.0)\", url: env.\($0.1) ?? \"\" }" }.joined(separator: ", "))] };\n}\n"),
            ("src/routes/+page.svelte", "<script>\n  export let data;\n</script>\n\n<h1>\(title(app))</h1>\n<ul>\n  {#each data.apis as a}\n    <li>{a.name}: {a.url}</li>\n  {/each}\n</ul>\n"),
            ("src/routes/health/+server.js", "import { json } from \"@sveltejs/kit\";\n\nexport function GET() {\n  return json({ status: \"ok\", service: \"\(app.component.slug)\" });\n}\n"),
            dockerfile(app, build: true, start: "PORT=${PORT:-\(app.port)} node build"),
        ]
    }

    static func angular(_ app: ScaffoldPlan.App) -> Files {
        let ng = [Package("@angular/common", "^18.0.5"), Package("@angular/compiler", "^18.0.5"), Package("@angular/core", "^18.0.5"),
                  Package("@angular/platform-browser", "^18.0.5"), Package("rxjs", "^7.8.1"), Package("tslib", "^2.6.3"),
                  Package("zone.js", "^0.14.7")]
        return [
            readme(app, dev: "npm start"),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("start", "ng serve --host 0.0.0.0 --port ${PORT:-\(app.port)}"), ("build", "ng build")],
                base: ng, dev: [Package("@angular-devkit/build-angular", "^18.0.6"), Package("@angular/cli", "^18.0.6"),
                                Package("@angular/compiler-cli", "^18.0.5"), Package("typescript", "~5.4.5")],
                extra: app.packages, module: false)),
            ("angular.json", "{\n  \"version\": 1,\n  \"projects\": {\n    \"app\": {\n      \"projectType\": \"application\",\n      \"root\": \"\",\n      \"sourceRoot\": \"src\",\n      \"architect\": {\n        \"build\": {\n          \"builder\": \"@angular-devkit/build-angular:application\",\n          \"options\": { \"outputPath\": \"dist\", \"index\": \"src/index.html\", \"browser\": \"src/main.ts\", \"polyfills\": [\"zone.js\"], \"tsConfig\": \"tsconfig.json\" }\n        },\n        \"serve\": { \"builder\": \"@angular-devkit/build-angular:dev-server\", \"options\": { \"buildTarget\": \"app:build\" } }\n      }\n    }\n  }\n}\n"),
            ("tsconfig.json", "{\n  \"compilerOptions\": {\n    \"target\": \"ES2022\",\n    \"module\": \"ES2022\",\n    \"moduleResolution\": \"bundler\",\n    \"strict\": true,\n    \"experimentalDecorators\": true,\n    \"skipLibCheck\": true\n  },\n  \"files\": [\"src/main.ts\"]\n}\n"),
            ("src/index.html", "<!doctype html>\n<html lang=\"en\">\n  <head>\n    <meta charset=\"utf-8\" />\n    <title>\(title(app))</title>\n  </head>\n  <body>\n    <app-root></app-root>\n  </body>\n</html>\n"),
            ("src/main.ts", "import { bootstrapApplication } from \"@angular/platform-browser\";\nimport { AppComponent } from \"./app/app.component\";\n\nbootstrapApplication(AppComponent).catch((err) => console.error(err));\n"),
            ("src/app/app.component.ts", "import { Component } from \"@angular/core\";\n\n@Component({\n  selector: \"app-root\",\n  standalone: true,\n  template: `<h1>\(title(app))</h1>\n    <ul>\(apis(app).map { "<li>\($0.0)</li>" }.joined())</ul>`,\n})\nexport class AppComponent {}\n"),
            dockerfile(app, build: false, start: "npm start"),
        ]
    }

    static func astro(_ app: ScaffoldPlan.App) -> Files {
        [
            readme(app),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("dev", "astro dev --port \(app.port)"), ("build", "astro build"),
                          ("start", "astro preview --host --port ${PORT:-\(app.port)}")],
                base: [Package("astro", "^4.11.3")], extra: app.packages)),
            ("astro.config.mjs", "import { defineConfig } from \"astro/config\";\n\nexport default defineConfig({});\n"),
            ("src/pages/index.astro", "---\nconst apis = [\(apis(app).map { "{ name: \"\($0.0)\", url: import.meta.env.\($0.1) ?? \"\" }" }.joined(separator: ", "))];\n---\n<html lang=\"en\">\n  <head><meta charset=\"utf-8\" /><title>\(title(app))</title></head>\n  <body>\n    <h1>\(title(app))</h1>\n    <ul>{apis.map((a) => <li>{a.name}: {a.url}</li>)}</ul>\n  </body>\n</html>\n"),
            dockerfile(app, build: true, start: "npm start"),
        ]
    }

    static func remix(_ app: ScaffoldPlan.App) -> Files {
        [
            readme(app),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("dev", "remix vite:dev --port \(app.port)"), ("build", "remix vite:build"),
                          ("start", "PORT=${PORT:-\(app.port)} remix-serve ./build/server/index.js")],
                base: [Package("@remix-run/node", "^2.10.0"), Package("@remix-run/react", "^2.10.0"),
                       Package("@remix-run/serve", "^2.10.0"), Package("isbot", "^5.1.11")] + react,
                dev: [Package("@remix-run/dev", "^2.10.0"), Package("vite", "^5.3.2")], extra: app.packages)),
            ("vite.config.js", "import { vitePlugin as remix } from \"@remix-run/dev\";\nimport { defineConfig } from \"vite\";\n\nexport default defineConfig({ plugins: [remix()] });\n"),
            ("app/root.jsx", "import { Links, Meta, Outlet, Scripts } from \"@remix-run/react\";\n\nexport default function App() {\n  return (\n    <html lang=\"en\">\n      <head>\n        <meta charSet=\"utf-8\" />\n        <Meta />\n        <Links />\n      </head>\n      <body>\n        <Outlet />\n        <Scripts />\n      </body>\n    </html>\n  );\n}\n"),
            ("app/routes/_index.jsx", "import { json } from \"@remix-run/node\";\nimport { useLoaderData } from \"@remix-run/react\";\n\nexport const loader = () => json({ apis: [\(serverApis(app))] });\n\nexport default function Index() {\n  const { apis } = useLoaderData();\n  return (\n    <main>\n      <h1>\(title(app))</h1>\n      <ul>\n        {apis.map((a) => (\n          <li key={a.name}>{a.name}: {a.url}</li>\n        ))}\n      </ul>\n    </main>\n  );\n}\n"),
            ("app/routes/health.js", "export const loader = () => Response.json({ status: \"ok\", service: \"\(app.component.slug)\" });\n"),
            dockerfile(app, build: true, start: "npm start"),
        ]
    }

    static func nuxt(_ app: ScaffoldPlan.App) -> Files {
        [
            readme(app),
            ("package.json", Manifests.packageJSON(app.component.slug,
                scripts: [("dev", "nuxt dev --port \(app.port)"), ("build", "nuxt build"),
                          ("start", "PORT=${PORT:-\(app.port)} node .output/server/index.mjs")],
                base: [Package("nuxt", "^3.12.2"), Package("vue", "^3.4.31")], extra: app.packages)),
            ("nuxt.config.ts", "export default defineNuxtConfig({\n  runtimeConfig: {\n\(apis(app).map { "    \(Manifests.camel($0.1.lowercased())): process.env.\($0.1) ?? \"\",\n" }.joined())  },\n});\n"),
            ("app.vue", "<template>\n  <main>\n    <h1>\(title(app))</h1>\n  </main>\n</template>\n"),
            ("server/api/health.ts", "export default defineEventHandler(() => ({ status: \"ok\", service: \"\(app.component.slug)\" }));\n"),
            dockerfile(app, build: true, start: "npm start"),
        ]
    }

    static func htmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "{", with: "&#123;").replacingOccurrences(of: "}", with: "&#125;")
            .replacingOccurrences(of: "`", with: "&#96;")
    }

    static func jsEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}

extension ScaffoldPlan {
    /// `<SLUG>_URL` from a slug.
    static func urlVariable(slugOnly slug: String) -> String {
        slug.uppercased().replacingOccurrences(of: "-", with: "_") + "_URL"
    }
}
