import RunnerCore

/// Builds `instructions.md`: the brief every generator works from.
public enum Instructions {
    /// Markdown instructions for `spec`.
    public static func markdown(for spec: ArchitectureSpec) -> String {
        var md = "# Build: \(spec.name)\n\n"
        if !spec.description.isEmpty { md += spec.description + "\n\n" }
        if let prompt = spec.prompt { md += "## What the user asked for\n\n" + prompt + "\n\n" }
        md += "Generate a complete, runnable starter codebase for the architecture below.\n"
        md += "Write every file into the current directory (the repository root).\n\n"
        md += "## Components\n\n"
        md += "| folder | name | kind | technology |\n|---|---|---|---|\n"
        for c in spec.components {
            md += "| `\(c.slug)/` | \(cell(c.name)) | \(c.kind) | \(cell(c.technology)) |\n"
        }
        md += "\n## Connections\n\n"
        if spec.connections.isEmpty { md += "None: the components are independent.\n" }
        for e in spec.connections {
            let from = spec.component(e.from)?.name ?? e.from
            let to = spec.component(e.to)?.name ?? e.to
            md += "- \(from) → \(to)" + (e.label.map { " (\($0))" } ?? "") + "\n"
        }
        md += """

        ## Requirements

        1. One folder per component, named as in the table, with idiomatic starter code for its technology.
        2. Every connection above is wired: configuration by environment variables, with sensible local defaults.
        3. A `README.md` at the root describing the components, how they connect, and how to run everything.
        4. A `docker-compose.yml` at the root that starts all components locally.
        5. A `.gitignore` suited to the technologies used.
        6. No secrets, no binary files, no symlinks, nothing under `.git`.

        The full architecture is in `spec.json` (normalised) and `architecture_spec.json` (as drawn).

        """
        return md
    }

    private static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }
}
