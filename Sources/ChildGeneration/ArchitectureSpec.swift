import RunnerCore

/// One component of an architecture, normalised from either node shape:
/// the seed's (`type` frontend/backend/database, `data.framework`) or the
/// web app's (`type: "custom"`, `data.componentId`, `data.category`).
public struct Component: Sendable, Hashable, Codable {
    /// The React Flow node id.
    public var id: String
    /// A human name (`data.label`, else the technology, else the id).
    public var name: String
    /// frontend, backend, database, cache, queue, storage, gateway, service, …
    public var kind: String
    /// The framework or product (`data.framework` or `data.componentId`), lowercased.
    public var technology: String
    /// A unique, path-safe folder name for this component.
    public var slug: String
    /// The palette entry it resolved to (`Catalogue`).
    public var componentId: String
    /// Why it was resolved by a fallback, if it was (logged by the child).
    public var fallback: String?

    /// What the catalogue says this component is and becomes.
    public var entry: CatalogueEntry { Catalogue.lookup(componentId) }
}

/// A directed connection between two components.
public struct Connection: Sendable, Hashable, Codable {
    public var from: String
    public var to: String
    public var label: String?
}

/// A validated architecture: what the generators build from.
public struct ArchitectureSpec: Sendable, Hashable {
    public var name: String
    public var description: String
    /// What the user asked for in words: the spec's `prompt`, else the job's.
    public var prompt: String?
    public var components: [Component]
    public var connections: [Connection]
    /// One line per component resolved by a fallback (for the job's log).
    public var notes: [String] { components.compactMap { c in c.fallback.map { "node \(c.id): \($0)" } } }

    /// Validates and normalises an `architecture_spec`. Throws `invalid_spec`
    /// with a message naming what is wrong. `fallbackPrompt` is the job's own
    /// `prompt`, used when the spec has none.
    public init(json: JSONValue, fallbackName: String, fallbackPrompt: String? = nil) throws {
        guard let root = json.objectValue else {
            throw JobFailure(.invalidSpec, "architecture_spec must be an object, got \(json.typeName)")
        }
        func text(_ v: JSONValue?, _ what: String) throws -> String? {
            guard let v, !v.isNull else { return nil }
            guard let s = v.stringValue else { throw JobFailure(.invalidSpec, "\(what) must be a string, got \(v.typeName)") }
            return s
        }
        name = try text(root["name"], "name").flatMap { $0.isEmpty ? nil : $0 } ?? fallbackName
        description = try text(root["description"], "description") ?? ""
        prompt = try text(root["prompt"], "prompt").flatMap { $0.isEmpty ? nil : $0 }
            ?? fallbackPrompt.flatMap { $0.isEmpty ? nil : $0 }
        guard let nodesValue = root["nodes"] else { throw JobFailure(.invalidSpec, "nodes is missing") }
        guard let nodes = nodesValue.arrayValue else {
            throw JobFailure(.invalidSpec, "nodes must be a list, got \(nodesValue.typeName)")
        }
        guard let edgesValue = root["edges"] else { throw JobFailure(.invalidSpec, "edges is missing") }
        guard let edges = edgesValue.arrayValue else {
            throw JobFailure(.invalidSpec, "edges must be a list, got \(edgesValue.typeName)")
        }
        guard !nodes.isEmpty else { throw JobFailure(.invalidSpec, "nodes is empty: nothing to generate") }
        guard nodes.count <= 500, edges.count <= 5000 else {
            throw JobFailure(.invalidSpec, "too many nodes (\(nodes.count), max 500) or edges (\(edges.count), max 5000)")
        }
        var seen = Set<String>()
        var slugs = Set<String>()
        var components: [Component] = []
        for (i, node) in nodes.enumerated() {
            guard let obj = node.objectValue else {
                throw JobFailure(.invalidSpec, "nodes[\(i)] must be an object, got \(node.typeName)")
            }
            guard let id = try text(obj["id"], "nodes[\(i)].id"), !id.isEmpty else {
                throw JobFailure(.invalidSpec, "nodes[\(i)].id is missing or empty")
            }
            guard seen.insert(id).inserted else { throw JobFailure(.invalidSpec, "nodes[\(i)].id '\(id)' is duplicated") }
            let type = try text(obj["type"], "nodes[\(i)].type") ?? ""
            let dataValue = obj["data"] ?? .object([:])
            guard let data = dataValue.objectValue else {
                throw JobFailure(.invalidSpec, "nodes[\(i)].data must be an object, got \(dataValue.typeName)")
            }
            let label = try text(data["label"], "nodes[\(i)].data.label")
            let framework = try text(data["framework"], "nodes[\(i)].data.framework")
            let componentId = try text(data["componentId"], "nodes[\(i)].data.componentId")
            let category = try text(data["category"], "nodes[\(i)].data.category")
            // The main editor sets `type` to the componentId, the project editor to
            // "custom"; the seed sets it to the kind and names the framework.
            let seedType = type == "custom" || type.isEmpty || type == componentId ? nil : type
            let resolved = Catalogue.resolve(componentId: componentId ?? framework, category: category, label: label,
                                             nodeType: seedType)
            let kind = [category, seedType].compactMap { $0.flatMap { Category(rawValue: $0.lowercased()) } }.first?
                .rawValue ?? seedType?.lowercased() ?? resolved.entry.category.rawValue
            let tech = (framework ?? componentId ?? resolved.entry.id).lowercased()
            let display = label.flatMap { $0.isEmpty ? nil : $0 } ?? (componentId ?? framework ?? id)
            var slug = Self.slug(display)
            if slug.isEmpty { slug = Self.slug(kind + "-" + id) }
            if slug.isEmpty { slug = "component" }
            var unique = slug
            var n = 2
            while !slugs.insert(unique).inserted { unique = "\(slug)-\(n)"; n += 1 }
            components.append(Component(id: id, name: display, kind: kind.isEmpty ? "service" : kind,
                                        technology: tech, slug: unique, componentId: resolved.entry.id,
                                        fallback: resolved.note))
        }
        var connections: [Connection] = []
        for (i, edge) in edges.enumerated() {
            guard let obj = edge.objectValue else {
                throw JobFailure(.invalidSpec, "edges[\(i)] must be an object, got \(edge.typeName)")
            }
            guard let s = try text(obj["source"], "edges[\(i)].source"), let t = try text(obj["target"], "edges[\(i)].target")
            else { throw JobFailure(.invalidSpec, "edges[\(i)] needs string source and target") }
            guard seen.contains(s) else { throw JobFailure(.invalidSpec, "edges[\(i)].source '\(s)' names no node") }
            guard seen.contains(t) else { throw JobFailure(.invalidSpec, "edges[\(i)].target '\(t)' names no node") }
            let label = try text(obj["label"], "edges[\(i)].label") ?? text(obj["data"]?["label"], "edges[\(i)].data.label")
            connections.append(Connection(from: s, to: t, label: label))
        }
        self.components = components
        self.connections = connections
    }

    /// The component with React Flow id `id`.
    public func component(_ id: String) -> Component? { components.first { $0.id == id } }

    /// `spec.json`: the normalised architecture, for generators and people.
    public var normalizedJSON: JSONValue {
        .object([
            "name": .string(name),
            "description": .string(description),
            "components": .array(components.map { c in
                ["id": .string(c.id), "name": .string(c.name), "kind": .string(c.kind),
                 "technology": .string(c.technology), "folder": .string(c.slug),
                 "componentId": .string(c.componentId), "category": .string(c.entry.category.rawValue),
                 "catalogueName": .string(c.entry.name), "becomes": .string(c.entry.summary)]
            }),
            "connections": .array(connections.map { e in
                var o: [String: JSONValue] = ["from": .string(e.from), "to": .string(e.to)]
                if let l = e.label { o["label"] = .string(l) }
                return .object(o)
            }),
        ])
    }

    /// Lowercase ASCII letters, digits and single dashes.
    public static func slug(_ s: String) -> String {
        var out = ""
        for ch in s.lowercased().unicodeScalars {
            if (ch >= "a" && ch <= "z") || (ch >= "0" && ch <= "9") { out.unicodeScalars.append(ch) }
            else if !out.isEmpty, !out.hasSuffix("-") { out += "-" }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return String(out.prefix(60))
    }
}
