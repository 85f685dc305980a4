/// The one JSON ticket line the supervisor writes first on a job child's
/// stdin, which then stays open for the whole job (EOF: the supervisor is
/// gone). Everything the child may know. It holds no key: the only secret in
/// it is the job's Gemini route token, and only when Gemini is in the chain
/// with a key configured (docs/contract.md, Protocol).
public struct JobTicket: Sendable, Codable {
    /// The job id as text (ObjectId hex or the string id).
    public var jobId: String
    public var attempt: Int
    public var projectName: String
    /// The project's remote (githubRepoUrl), if it has one.
    public var repoURL: String?
    public var architectureSpec: JSONValue
    /// The job's own `prompt`, if it has one (the spec's `prompt` comes first).
    public var prompt: String?
    public var workspace: String
    /// The runner's `RunnerConfiguration.child`, whole.
    public var settings: ChildSettings
    public var secrets: ChildSecrets
    /// The job's pids cgroup `pids.events`, when the supervisor made one (the
    /// child then reports a fork bomb as `resource_limit`); nil: RLIMIT_NPROC.
    public var pidsEventsPath: String?
    /// How the commit is published (`PublishPlan`, decided by the supervisor);
    /// nil: pushed onto `settings.branch`.
    public var publish: PublishPlan?
    /// Where a stopped run's partial work goes, and the checkpoint to start
    /// from; nil: no checkpoint (CHECKPOINT_ON=none, or no remote).
    public var checkpoint: CheckpointPlan?
    #if DEBUG
    /// Tests only: the provider route Cline calls when the child has no egress
    /// proxy of its own (JOB_NETWORK=host). Release builds have no such field.
    public var testProviderBaseURL: String?
    #endif

    public init(jobId: String, attempt: Int, projectName: String, repoURL: String?, architectureSpec: JSONValue,
                workspace: String, settings: ChildSettings, secrets: ChildSecrets, prompt: String? = nil,
                pidsEventsPath: String? = nil) {
        self.jobId = jobId
        self.attempt = attempt
        self.projectName = projectName
        self.repoURL = repoURL
        self.architectureSpec = architectureSpec
        self.prompt = prompt
        self.workspace = workspace
        self.settings = settings
        self.secrets = secrets
        self.pidsEventsPath = pidsEventsPath
    }
}

/// Secrets for one job. Never logged: `description` hides them. The ticket
/// carries only the Gemini route token (never the Gemini key, which only
/// the job's egress proxy holds), and only when Gemini is in the chain with a
/// key and the job has a route out; the push token comes later, in a second
/// line on stdin, after the child asked for it (`ChildEvent.pushTokenRequest`)
/// with every agent process gone.
public struct ChildSecrets: Sendable, Codable, CustomStringConvertible {
    public var githubToken: String?
    /// The token of the egress proxy's Gemini route (`GeminiRoute`).
    public var geminiRouteToken: String?
    /// Not a secret: what the egress proxy denied during the agent phase, sent
    /// with the push token (a pull request's body reports it).
    public var egress: EgressReport?
    public init(githubToken: String?, geminiRouteToken: String? = nil, egress: EgressReport? = nil) {
        self.githubToken = githubToken
        self.geminiRouteToken = geminiRouteToken
        self.egress = egress
    }
    public var description: String { "ChildSecrets(redacted)" }
    /// The secret values present, for exact-match redaction.
    public var values: [String] { [githubToken, geminiRouteToken].compactMap { $0 } }
}

/// The job's `metadata` sub-document.
public struct JobMetadata: Sendable, Codable, Hashable {
    public var repoUrl: String?
    public var branch: String?
    public var commitSha: String?
    public var parentSha: String?
    public var unchanged: Bool?
    public var pushSkipped: Bool?
    public var pushSkippedReason: String?
    public var alreadyPushed: Bool?
    public var generator: String?
    public var files: Int?
    public var bytes: Int?
    /// Milliseconds per phase: spawnMs (spawn to the child's first event) and
    /// databaseMs (how long the job's end waited for a batched write under
    /// way) from the supervisor; sandboxMs, generateMs, validateMs and
    /// publishMs from the child (docs/contract.md lists the finer ones).
    public var timings: [String: Int]?
    /// What the agent generator (Cline) reported: model and token usage.
    public var agent: AgentUsage?
    /// How the commit was published: `push`, `branch` or `pull-request`
    /// (`push` also when a repository's first commit went onto its default branch).
    public var publishMode: String?
    /// The pull request opened or updated (`pull-request`).
    public var pullRequest: PullRequestInfo?
    public init() {}

    /// As a JSON object (absent fields omitted).
    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if let repoUrl { o["repoUrl"] = .string(repoUrl) }
        if let branch { o["branch"] = .string(branch) }
        if let commitSha { o["commitSha"] = .string(commitSha) }
        if let parentSha { o["parentSha"] = .string(parentSha) }
        if let unchanged { o["unchanged"] = .bool(unchanged) }
        if let pushSkipped { o["pushSkipped"] = .bool(pushSkipped) }
        if let pushSkippedReason { o["pushSkippedReason"] = .string(pushSkippedReason) }
        if let alreadyPushed { o["alreadyPushed"] = .bool(alreadyPushed) }
        if let generator { o["generator"] = .string(generator) }
        if let files { o["files"] = .int(Int64(files)) }
        if let bytes { o["bytes"] = .int(Int64(bytes)) }
        if let timings { o["timings"] = .object(timings.mapValues { .int(Int64($0)) }) }
        if let agent { o["agent"] = agent.json }
        if let publishMode { o["publishMode"] = .string(publishMode) }
        if let pullRequest { o["pullRequest"] = pullRequest.json }
        return .object(o)
    }
}

/// The model and token usage of one agent run, as the agent CLI reported
/// them (Cline 3.x `run_result`, or the sum of Cline 2.x `api_req_started`
/// messages). Stored as the job's `metadata.agent`.
public struct AgentUsage: Sendable, Codable, Hashable {
    /// The output format the agent spoke: "cline-3" (run_start/agent_event/
    /// run_result) or "cline-2" (say/ask messages).
    public var format: String?
    public var provider: String?
    public var model: String?
    public var inputTokens: Int?
    public var outputTokens: Int?
    public var cacheReadTokens: Int?
    public var cacheWriteTokens: Int?
    /// Estimated cost in US dollars, when the agent reported one.
    public var cost: Double?
    /// Agent loop iterations (3.x) or API requests (2.x).
    public var iterations: Int?
    /// Why the run ended (3.x: completed, aborted, error, max_iterations, mistake_limit).
    public var finishReason: String?
    public var durationMs: Int?
    public init() {}

    /// True when nothing was recorded.
    public var isEmpty: Bool { self == AgentUsage() }

    /// The longest string kept (`format`, `provider`, `model`, `finishReason`), in UTF-8 bytes.
    public static let maxStringBytes = 256

    /// This usage with every string at most `maxStringBytes` (cut with a
    /// marker), every count at least 0, and the cost finite and at least 0
    /// (else dropped): what the agent reported, made safe to store and encode.
    public var bounded: AgentUsage {
        func clip(_ s: String?) -> String? { s.map { LogBounds.clip($0, bytes: Self.maxStringBytes) } }
        func count(_ n: Int?) -> Int? { n.map { max($0, 0) } }
        var u = self
        u.format = clip(format)
        u.provider = clip(provider)
        u.model = clip(model)
        u.finishReason = clip(finishReason)
        u.inputTokens = count(inputTokens)
        u.outputTokens = count(outputTokens)
        u.cacheReadTokens = count(cacheReadTokens)
        u.cacheWriteTokens = count(cacheWriteTokens)
        u.iterations = count(iterations)
        u.durationMs = count(durationMs)
        u.cost = cost.flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
        return u
    }

    /// `a + b` for counts the agent reports: nil when neither is known, and
    /// `Int.max` instead of an overflow.
    public static func sum(_ a: Int?, _ b: Int?) -> Int? {
        guard let b else { return a }
        let (s, overflow) = (a ?? 0).addingReportingOverflow(b)
        return overflow ? (b < 0 ? Int.min : Int.max) : s
    }

    /// `a + b` for costs: non-finite values are ignored, and the sum stays finite.
    public static func sum(_ a: Double?, _ b: Double?) -> Double? {
        guard let b, b.isFinite else { return a }
        let s = (a ?? 0) + b
        return s.isFinite ? s : (s > 0 ? Double.greatestFiniteMagnitude : -Double.greatestFiniteMagnitude)
    }

    /// As a JSON object (absent fields omitted).
    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if let format { o["format"] = .string(format) }
        if let provider { o["provider"] = .string(provider) }
        if let model { o["model"] = .string(model) }
        for (k, v) in [("inputTokens", inputTokens), ("outputTokens", outputTokens), ("cacheReadTokens", cacheReadTokens),
                       ("cacheWriteTokens", cacheWriteTokens), ("iterations", iterations), ("durationMs", durationMs)] {
            if let v { o[k] = .int(Int64(v)) }
        }
        if let cost { o["cost"] = .double(cost) }
        if let finishReason { o["finishReason"] = .string(finishReason) }
        return .object(o)
    }
}

/// Pipeline stages recorded in the job's `stage` field.
public enum JobStage: String, Sendable, Codable {
    case claimed, preparing, generating, validating, committing, pushing, finished
}

/// One NDJSON line on the child's stdout.
public enum ChildEvent: Sendable, Codable, Equatable {
    case log(String)
    case stage(JobStage)
    case succeeded(JobMetadata)
    case failed(JobFailure)
    /// The agent phase is over and every process it started is gone: the
    /// supervisor may now send the push token (a `ChildSecrets` line on stdin).
    case pushTokenRequest
    /// A stopped run's partial work is on its work-in-progress branch (the
    /// child exits next, without a `result`: the supervisor's stop decides).
    case checkpoint(CheckpointInfo)
    /// The child took a stop line: it checkpoints, then exits (without it,
    /// the supervisor falls back to SIGTERM after a few seconds).
    case stopping
    /// One entry of the job's event stream (`JobEvent`: redacted and bounded by the child).
    case event(JobEvent)

    private enum CodingKeys: String, CodingKey { case type, line, stage, ok, metadata, error, checkpoint, event }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .type) {
        case "log": self = .log(try c.decode(String.self, forKey: .line))
        case "stage": self = .stage(try c.decode(JobStage.self, forKey: .stage))
        case "push_token_request": self = .pushTokenRequest
        case "checkpoint": self = .checkpoint(try c.decode(CheckpointInfo.self, forKey: .checkpoint))
        case "stopping": self = .stopping
        case "event": self = .event(try c.decode(JobEvent.self, forKey: .event))
        case "result":
            if try c.decode(Bool.self, forKey: .ok) {
                self = .succeeded(try c.decode(JobMetadata.self, forKey: .metadata))
            } else {
                self = .failed(try c.decode(JobFailure.self, forKey: .error))
            }
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown event type \(other)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .log(let line): try c.encode("log", forKey: .type); try c.encode(line, forKey: .line)
        case .stage(let s): try c.encode("stage", forKey: .type); try c.encode(s, forKey: .stage)
        case .pushTokenRequest: try c.encode("push_token_request", forKey: .type)
        case .checkpoint(let info): try c.encode("checkpoint", forKey: .type); try c.encode(info, forKey: .checkpoint)
        case .stopping: try c.encode("stopping", forKey: .type)
        case .event(let e): try c.encode("event", forKey: .type); try c.encode(e, forKey: .event)
        case .succeeded(let m):
            try c.encode("result", forKey: .type); try c.encode(true, forKey: .ok); try c.encode(m, forKey: .metadata)
        case .failed(let e):
            try c.encode("result", forKey: .type); try c.encode(false, forKey: .ok); try c.encode(e, forKey: .error)
        }
    }
}
