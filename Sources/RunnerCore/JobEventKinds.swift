import Foundation

/// One constructor per `JobEvent.Kind`: the only way producers name a
/// kind's fields (docs/contract.md, "Job events", lists them).
extension JobEvent {
    private static func int(_ n: Int?) -> JSONValue { n.map { .int(Int64($0)) } ?? .null }
    private static func str(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
    private static func num(_ d: Double?) -> JSONValue { d.flatMap { $0.isFinite ? .double($0) : nil } ?? .null }

    /// `status` and `code`: the attempt's outcome, with `finished` (`pending` when it is retried or requeued).
    public static func stage(_ stage: JobStage, at: Date = Date(), status: String? = nil, code: String? = nil,
                             message: String? = nil) -> JobEvent {
        JobEvent(.stage, at: at, ["stage": .string(stage.rawValue), "status": str(status), "code": str(code),
                                  "message": str(message)])
    }

    public static func modelRequest(agent: String, model: String?, provider: String?, iteration: Int?) -> JobEvent {
        JobEvent(.modelRequest, ["agent": .string(agent), "model": str(model), "provider": str(provider),
                                 "iteration": int(iteration)])
    }

    /// `usage`'s tokens and cost are the call's own, as the agent reported them.
    public static func modelResponse(agent: String, usage: AgentUsage, durationMs: Int?) -> JobEvent {
        JobEvent(.modelResponse, ["agent": .string(agent), "model": str(usage.model), "provider": str(usage.provider),
                                  "inputTokens": int(usage.inputTokens), "outputTokens": int(usage.outputTokens),
                                  "cacheReadTokens": int(usage.cacheReadTokens), "cacheWriteTokens": int(usage.cacheWriteTokens),
                                  "cost": num(usage.cost), "durationMs": int(durationMs)])
    }

    public static func toolCall(agent: String, tool: String, id: String?, input: String?) -> JobEvent {
        JobEvent(.toolCall, ["agent": .string(agent), "tool": .string(tool), "id": str(id), "input": str(input)])
    }

    public static func toolResult(agent: String, tool: String, id: String?, error: String?, output: String?,
                                  durationMs: Int?) -> JobEvent {
        JobEvent(.toolResult, ["agent": .string(agent), "tool": .string(tool), "id": str(id), "ok": .bool(error == nil),
                               "error": str(error), "output": str(output), "durationMs": int(durationMs)])
    }

    public static func command(agent: String, command: String, exitCode: Int?, output: String?) -> JobEvent {
        JobEvent(.command, ["agent": .string(agent), "command": .string(command), "exitCode": int(exitCode),
                            "output": str(output)])
    }

    /// `operation`: `create`, `edit` or `delete`.
    public static func fileWrite(agent: String, path: String, operation: String, bytes: Int?) -> JobEvent {
        JobEvent(.fileWrite, ["agent": .string(agent), "path": .string(path), "operation": .string(operation),
                              "bytes": int(bytes)])
    }

    /// `role`: `assistant`, `reasoning`, `task`, `question`, `notice` or `result`.
    public static func message(agent: String, role: String, text: String, extra: [String: JSONValue] = [:]) -> JobEvent {
        JobEvent(.message, ["agent": .string(agent), "role": .string(role), "text": .string(text)]
            .merging(extra) { a, _ in a })
    }

    public static func error(source: String, message: String, recoverable: Bool = false) -> JobEvent {
        JobEvent(.error, ["source": .string(source), "message": .string(message), "recoverable": .bool(recoverable)])
    }

    public static func egressAllowed(target: String, detail: String?, at: Date = Date()) -> JobEvent {
        JobEvent(.egressAllowed, at: at, ["target": .string(target), "detail": str(detail)])
    }

    public static func egressDenied(target: String, reason: String?, detail: String?, at: Date = Date()) -> JobEvent {
        JobEvent(.egressDenied, at: at, ["target": .string(target), "reason": str(reason), "detail": str(detail)])
    }

    /// One model call the egress proxy metered (`CallUsage`).
    public static func providerCall(_ u: CallUsage, at: Date = Date()) -> JobEvent {
        JobEvent(.providerCall, at: at, ["route": .string(u.route), "model": str(u.model), "status": int(u.status),
                                         "inputTokens": int(u.inputTokens), "outputTokens": int(u.outputTokens),
                                         "cacheReadTokens": int(u.cacheReadTokens), "cacheWriteTokens": int(u.cacheWriteTokens),
                                         "costUsd": num(u.cost), "durationMs": int(u.durationMs),
                                         "streamed": .bool(u.streamed), "retries": int(u.retries)])
    }

    public static func budget(message: String, exceeded: Bool, at: Date = Date()) -> JobEvent {
        JobEvent(.budget, at: at, ["message": .string(message), "exceeded": .bool(exceeded)])
    }

    /// `step`: `started`, `skipped`, `failed` or `finished`.
    public static func generator(_ name: String, step: String, detail: String? = nil, files: Int? = nil) -> JobEvent {
        JobEvent(.generator, ["generator": .string(name), "step": .string(step), "detail": str(detail), "files": int(files)])
    }

    /// `finding`: `tree` (the scan's result), `missing_readme`, `too_few_files` or `unsafe_output`.
    public static func validation(finding: String, ok: Bool, detail: String? = nil, files: Int? = nil,
                                  bytes: Int? = nil) -> JobEvent {
        JobEvent(.validation, ["finding": .string(finding), "ok": .bool(ok), "detail": str(detail), "files": int(files),
                               "bytes": int(bytes)])
    }

    /// `step`: `commit`, `push`, `skipped`, `unchanged`, `already_pushed`, `pull_request`, `failed` or `checkpoint`.
    public static func publish(step: String, detail: String? = nil, commit: String? = nil, branch: String? = nil) -> JobEvent {
        JobEvent(.publish, ["step": .string(step), "detail": str(detail), "commit": str(commit), "branch": str(branch)])
    }

    /// A file of the pushed commit: `status` is `added`, `modified`, `deleted` or `renamed`.
    public struct ChangedFile: Sendable, Equatable {
        public var path: String
        public var status: String
        public var bytes: Int?
        public var binary: Bool
        public init(path: String, status: String, bytes: Int?, binary: Bool) {
            self.path = path
            self.status = status
            self.bytes = bytes
            self.binary = binary
        }
        var json: JSONValue {
            .object(["path": .string(path), "status": .string(status), "bytes": bytes.map { .int(Int64($0)) } ?? .null,
                     "binary": .bool(binary)].filter { !$0.value.isNull })
        }
    }

    /// The pushed commit's files (at most `maxArrayEntries` listed; `total` counts all).
    public static func changes(commit: String, parent: String?, files: [ChangedFile]) -> JobEvent {
        JobEvent(.changes, ["commit": .string(commit), "parent": str(parent), "total": .int(Int64(files.count)),
                            "files": .array(files.prefix(maxArrayEntries).map(\.json))])
    }

    public static func diff(path: String, text: String, bytes: Int) -> JobEvent {
        JobEvent(.diff, ["path": .string(path), "text": .string(text), "bytes": .int(Int64(bytes))])
    }

    public static func truncated(max: Int) -> JobEvent {
        JobEvent(.truncated, ["max": .int(Int64(max)),
                              "detail": .string("this job's event stream holds at most JOB_EVENTS_MAX=\(max) events; later ones are dropped")])
    }
}
