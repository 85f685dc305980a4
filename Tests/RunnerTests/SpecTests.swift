import ChildGeneration
import RunnerCore
import Testing

@Suite struct SpecTests {
    @Test func seedShapeIsNormalised() throws {
        let spec = try ArchitectureSpec(json: try TestEnv.exampleSpec("ecommerce-seed-shape.json"), fallbackName: "x")
        #expect(spec.name == "Demo shop")
        #expect(spec.components.count == 5)
        let kinds = Set(spec.components.map(\.kind))
        #expect(kinds.isSuperset(of: ["frontend", "backend", "database"]))
        #expect(spec.components.contains { $0.technology == "fastapi" })
        #expect(Set(spec.components.map(\.slug)).count == spec.components.count)
        #expect(spec.connections.count == 5)
    }

    @Test func webAppCustomShapeIsNormalised() throws {
        let spec = try ArchitectureSpec(json: try TestEnv.exampleSpec("webapp-custom-shape.json"), fallbackName: "x")
        #expect(spec.components.count == 6)
        // type "custom": the kind comes from data.category, the technology from data.componentId.
        #expect(spec.components.contains { $0.kind == "queue" })
        #expect(spec.components.allSatisfy { $0.technology != "custom" })
        let json = spec.normalizedJSON
        #expect(json["components"]?.arrayValue?.count == 6)
        #expect(json["connections"]?.arrayValue?.count == 6)
    }

    @Test(arguments: [
        (#"{"edges": []}"#, "nodes is missing"),
        (#"{"nodes": {}, "edges": []}"#, "nodes must be a list"),
        (#"{"nodes": [{"id": "a"}]}"#, "edges is missing"),
        (#"{"nodes": [{"id": "a"}], "edges": "x"}"#, "edges must be a list"),
        (#"{"nodes": [{"id": "a"}], "edges": [{"source": "a", "target": "zz"}]}"#, "'zz' names no node"),
        (#"{"nodes": [{"id": 5}], "edges": []}"#, "nodes[0].id must be a string"),
        (#"{"nodes": [{"id": "a", "data": []}], "edges": []}"#, "nodes[0].data must be an object"),
        (#"{"nodes": [{"id": "a"}, {"id": "a"}], "edges": []}"#, "duplicated"),
        (#"{"nodes": [], "edges": []}"#, "nodes is empty"),
        (#"[1, 2]"#, "must be an object"),
    ])
    func malformedSpecsAreRejected(text: String, expected: String) throws {
        let error = #expect(throws: JobFailure.self) {
            _ = try ArchitectureSpec(json: try JSONValue.parse(text), fallbackName: "x")
        }
        #expect(error?.code == .invalidSpec)
        #expect(error?.message.contains(expected) == true, "\(error?.message ?? "") should mention \(expected)")
    }

    @Test func instructionsNameEveryComponentAndConnection() throws {
        let spec = try ArchitectureSpec(json: tinySpec, fallbackName: "x")
        let md = Instructions.markdown(for: spec)
        #expect(md.contains("# Build: Tiny"))
        #expect(md.contains("`web/`") && md.contains("`api/`"))
        #expect(md.contains("Web → API"))
        #expect(md.contains("README.md"))
    }

    @Test func scaffoldIsDeterministicAndComplete() throws {
        let spec = try ArchitectureSpec(json: try TestEnv.exampleSpec("ecommerce-seed-shape.json"), fallbackName: "x")
        let a = ScaffoldGenerator.files(for: spec)
        let b = ScaffoldGenerator.files(for: try ArchitectureSpec(json: try TestEnv.exampleSpec("ecommerce-seed-shape.json"),
                                                                  fallbackName: "x"))
        #expect(a.map(\.path) == b.map(\.path))
        #expect(a.map(\.content) == b.map(\.content))
        let paths = Set(a.map(\.path))
        #expect(paths.isSuperset(of: ["README.md", ".gitignore", "docker-compose.yml"]))
        // Frameworks get a folder; the database and the cache are compose services.
        for c in spec.components where ["frontend", "backend"].contains(c.kind) { #expect(paths.contains("\(c.slug)/README.md")) }
        #expect(!paths.contains { $0.hasPrefix("session-cache/") })
        let readme = a.first { $0.path == "README.md" }!.content
        #expect(readme.contains("```mermaid"))
        #expect(readme.contains("docker compose up"))
        #expect(paths.contains { $0.hasSuffix("main.py") }) // the fastapi component
    }
}
