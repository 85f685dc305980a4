/// Manifests (with the wired client libraries and SDKs) and integration
/// modules, per language.
enum Manifests {
    /// package.json: `base` and the wired packages as dependencies.
    static func packageJSON(_ name: String, scripts: [(String, String)], base: [Package], dev: [Package] = [],
                            extra: [Package], module: Bool = true) -> String {
        func block(_ ps: [Package]) -> String {
            var seen = Set<String>()
            let unique = ps.filter { seen.insert($0.name).inserted }.sorted()
            return unique.map { "    \"\($0.name)\": \"\($0.version)\"" }.joined(separator: ",\n")
        }
        var s = "{\n  \"name\": \"\(name)\",\n  \"version\": \"0.1.0\",\n  \"private\": true,\n"
        if module { s += "  \"type\": \"module\",\n" }
        s += "  \"scripts\": {\n" + scripts.map { "    \"\($0.0)\": \"\($0.1)\"" }.joined(separator: ",\n") + "\n  },\n"
        s += "  \"dependencies\": {\n" + block(base + extra) + "\n  }"
        if !dev.isEmpty { s += ",\n  \"devDependencies\": {\n" + block(dev) + "\n  }" }
        return s + "\n}\n"
    }

    static func requirements(_ base: [Package], extra: [Package]) -> String {
        var seen = Set<String>()
        return (base + extra).filter { seen.insert($0.name).inserted }.sorted()
            .map { "\($0.name)==\($0.version)" }.joined(separator: "\n") + "\n"
    }

    static func goMod(_ module: String, extra: [Package]) -> String {
        var s = "module example.com/\(module)\n\ngo 1.22\n"
        if !extra.isEmpty { s += "\nrequire (\n" + extra.map { "\t\($0.name) \($0.version)\n" }.joined() + ")\n" }
        return s
    }

    static func gemfile(_ base: [Package], extra: [Package]) -> String {
        "source \"https://rubygems.org\"\n\n" + (base + extra).map { "gem \"\($0.name)\", \"\($0.version)\"\n" }.joined()
    }

    static func composerJSON(_ name: String, base: [Package], extra: [Package]) -> String {
        let req = ([Package("php", "^8.2")] + base + extra).map { "    \"\($0.name)\": \"\($0.version)\"" }.joined(separator: ",\n")
        return """
        {
          "name": "app/\(name)",
          "type": "project",
          "require": {
        \(req)
          },
          "autoload": {
            "psr-4": { "App\\\\": "app/" }
          }
        }

        """
    }

    static func pomDependencies(_ extra: [Package]) -> String {
        extra.map { p in
            let parts = p.name.split(separator: ":")
            return "    <dependency>\n      <groupId>\(parts[0])</groupId>\n      <artifactId>\(parts.last!)</artifactId>\n"
                + "      <version>\(p.version)</version>\n    </dependency>\n"
        }.joined()
    }

    /// The integration module of `entry` for an app: the SDK set up from the
    /// environment, or, without an SDK for the language, its configuration.
    static func integration(_ entry: CatalogueEntry, sdk: SDK?, app: ScaffoldPlan.App) -> (String, String) {
        let g: Integration
        if case .integration(let i) = entry.becomes { g = i } else { g = Integration(env: [], sdks: [:], web: nil) }
        let vars = g.env.map(\.0)
        let file = entry.id.replacingOccurrences(of: "-", with: "_")
        let header = "\(entry.name) (\(entry.category.rawValue))"
        switch app.framework.language {
        case .node:
            let ext = app.framework == .nestjs ? "ts" : "js"
            let dir = app.framework.integrationsDir
            if let sdk, !sdk.setup.isEmpty {
                var setup = sdk.setup
                // Next.js exposes public variables as process.env.NEXT_PUBLIC_*, not import.meta.env.
                if app.framework == .nextjs { setup = setup.replacingOccurrences(of: "import.meta.env?.VITE_", with: "process.env.NEXT_PUBLIC_") }
                return ("\(dir)/\(entry.id).\(ext)", "// \(header): configured from \(vars.joined(separator: ", ")).\n"
                        + sdk.imports + "\n\n" + setup + "\n")
            }
            let body = vars.map { "  \($0): process.env.\($0) ?? \"\"," }.joined(separator: "\n")
            return ("\(dir)/\(entry.id).\(ext)", "// \(header): configuration only; call it from server code.\n"
                    + "export const \(camel(file)) = {\n\(body)\n};\n")
        case .python:
            if let sdk, !sdk.setup.isEmpty {
                return ("integrations/\(file).py", "\"\"\"\(header): configured from \(vars.joined(separator: ", ")).\"\"\"\n"
                        + sdk.imports + "\n\n" + sdk.setup + "\n")
            }
            return ("integrations/\(file).py", "\"\"\"\(header): configuration only.\"\"\"\nimport os\n\nCONFIG = {\n"
                    + vars.map { "    \"\($0)\": os.environ.get(\"\($0)\", \"\"),\n" }.joined() + "}\n")
        case .go:
            let name = camel(file).prefix(1).uppercased() + camel(file).dropFirst()
            return ("integrations/\(file).go", "// Package integrations holds the configuration of external services.\n"
                    + "// \(header)\(sdk.map { ": SDK " + $0.packages.map(\.name).joined(separator: ", ") } ?? "").\n"
                    + "package integrations\n\nimport \"os\"\n\n// \(name) reads the \(entry.name) settings.\nfunc \(name)() map[string]string {\n"
                    + "\treturn map[string]string{\n" + vars.map { "\t\t\"\($0)\": os.Getenv(\"\($0)\"),\n" }.joined() + "\t}\n}\n")
        case .java:
            let cls = camel(file).prefix(1).uppercased() + camel(file).dropFirst() + "Config"
            return ("src/main/java/com/example/app/integrations/\(cls).java",
                    "package com.example.app.integrations;\n\n/** \(header)\(sdk.map { ": SDK " + $0.packages.map(\.name).joined() } ?? ""). */\n"
                    + "public final class \(cls) {\n" + vars.map { "    public static final String \($0) = System.getenv(\"\($0)\");\n" }.joined()
                    + "\n    private \(cls)() {}\n}\n")
        case .ruby:
            return ("config/initializers/\(file).rb", "# \(header)\(sdk.map { ": gem " + $0.packages.map(\.name).joined() } ?? "").\n"
                    + "Rails.application.config.x.\(file) = {\n" + vars.map { "  \($0.lowercased()): ENV.fetch(\"\($0)\", \"\"),\n" }.joined() + "}\n")
        case .php:
            return ("config/\(file).php", "<?php\n\n// \(header)\(sdk.map { ": " + $0.packages.map(\.name).joined() } ?? "").\nreturn [\n"
                    + vars.map { "    '\($0.lowercased())' => env('\($0)', ''),\n" }.joined() + "];\n")
        }
    }

    static func camel(_ s: String) -> String {
        let parts = s.split(whereSeparator: { $0 == "_" || $0 == "-" })
        return parts.enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.prefix(1).uppercased() + $0.element.dropFirst() }.joined()
    }
}

extension Framework {
    /// Where a JavaScript app keeps its integration modules.
    var integrationsDir: String {
        switch self {
        case .nextjs: "lib/integrations"
        case .remix: "app/integrations"
        case .nuxt: "server/integrations"
        case .svelte: "src/lib/integrations"
        default: "src/integrations"
        }
    }
}
