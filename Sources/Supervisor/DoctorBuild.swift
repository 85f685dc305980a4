import RunnerCore

/// The doctor's build line: this binary's version and commit, and whether the
/// job child beside it comes from the same build (the protocol between the
/// two is not versioned: a mismatch fails jobs with `unreadable ticket`).
enum BuildCheck {
    static func report(childPath: String?, report: (String, String) -> Void) async {
        guard let childPath else {
            report("ok", "agent-runner \(RunnerVersion.line)")
            return
        }
        let run = try? await ChildRun.collect(childPath, ["--version"], environment: ["LANG": "C.UTF-8"])
        let childLine = run?.lines.first ?? ""
        if run?.status == .exited(0), childLine == RunnerVersion.line {
            report("ok", "agent-runner \(RunnerVersion.line); agent-runner-job is the same build")
        } else {
            report("fail", "agent-runner \(RunnerVersion.line), but agent-runner-job says "
                + (childLine.isEmpty ? "nothing" : "'\(childLine.prefix(120))'")
                + ": install both binaries from one build")
        }
    }
}
