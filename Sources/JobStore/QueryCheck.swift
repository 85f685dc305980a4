import Foundation
import RunnerCore

/// `doctor`'s check that the server accepts every query and update shape the
/// runner uses: the store's own operations, run once each, in the order a
/// job's life makes them, against scratch collections (`doctor_<random>_jobs`,
/// `…_projects`, `…_project_locks`) that are dropped afterwards. The answers
/// are checked too: nested fields come back nested, dates as dates, counts
/// agree with the reads (docs/contract.md, "Query shapes").
/// A shape the server accepts but answers wrongly (a flat key for a nested
/// field, a date as a string, a count that disagrees with the read).
public struct WrongAnswer: Error, CustomStringConvertible, Sendable {
    public let description: String
}

extension JobStore {
    /// One operation of the check and, when the server refused it, why.
    public struct ShapeResult: Sendable {
        public let name: String
        public let error: (any Error)?
    }

    /// Runs each shape once; returns one result per shape (a shape whose
    /// prerequisite failed is reported with that failure).
    public func checkQueryShapes() async -> [ShapeResult] {
        let scratch = JobStore(pool: pool, logCap: 5,
                               collectionPrefix: "doctor_\(UUID().uuidString.prefix(8).lowercased())_")
        var results: [ShapeResult] = []
        func step<T>(_ name: String, _ body: () async throws -> T) async -> T? {
            do {
                let value = try await body()
                results.append(ShapeResult(name: name, error: nil))
                return value
            } catch {
                results.append(ShapeResult(name: name, error: error))
                return nil
            }
        }
        struct Skipped: Error, CustomStringConvertible { let description: String }
        func expect(_ ok: Bool, _ problem: @autoclosure () -> String) throws { if !ok { throw WrongAnswer(description: problem()) } }
        _ = await step("claim on an empty queue (expired-lease scan, priority probes, sorted fallback query)") {
            try await scratch.claim(owner: "doctor", leaseSeconds: 60)
        }
        let project = await step("insertProject") { try await scratch.insertProject(name: "doctor", repoURL: nil) }
        let projectId = JSONValue.string(project ?? "none")
        _ = await step("insertJob") { try await scratch.insertJob(projectId: project ?? "none", spec: ["nodes": []], priority: 1) }
        _ = await step("insertJob") { try await scratch.insertJob(projectId: project ?? "none", spec: ["nodes": []], priority: 1) }
        let job = await step("claim (priority window scan, guarded updateOne)") {
            guard let j = try await scratch.claim(owner: "doctor", leaseSeconds: 60) else { throw Skipped(description: "nothing claimed") }
            return j
        }
        _ = await step("busyProjects") { try await scratch.busyProjects() }
        if let job {
            _ = await step("the claimed job read back (nested lease, dates as dates, counts)") {
                let doc = try await scratch.job(job.idText)
                let lease = doc?["lease"]
                try expect(lease?.objectValue != nil && lease?["token"]?.stringValue == job.token,
                           "the lease sub-document is not nested as written: \(JobStore.summary(doc ?? .null))")
                for (name, value) in [("lease.expiresAt", lease?["expiresAt"]), ("startedAt", doc?["startedAt"]),
                                      ("createdAt", doc?["createdAt"])] {
                    try expect(value?.dateValue != nil, "\(name) is not read back as a date: \(value?.jsonString ?? "absent")")
                }
                try expect(doc?["attempts"]?.intValue == 1, "attempts is not read back as the integer 1: \(doc?["attempts"]?.jsonString ?? "absent")")
            }
            _ = await step("acquireProjectLock (upsert)") { try await scratch.acquireProjectLock(job, projectId: projectId, leaseSeconds: 60) }
            _ = await step("writeProgress (bulk updateOne: $set stage, $push $each $slice)") {
                let matched = try await scratch.writeProgress([ProgressUpdate(job: job, stage: .generating, lines: ["doctor"])])
                try expect(matched == 1, "the bulk update reports \(matched) documents matched, not 1")
            }
            _ = await step("renewLeases (updateMany on lease tokens, the lease read projecting {lease: 1}, project locks)") {
                let answer = try await scratch.renewLeases([job.token], leaseSeconds: 60)
                try expect(answer.contradiction == nil, answer.contradiction.map { "\($0)" } ?? "")
                try expect(answer.held == [job.token: false], "the lease read does not find the held lease: \(answer.held)")
            }
            if let second = await step("claim of a busy project's job", { () async throws -> ClaimedJob? in
                if let j = try await scratch.claim(owner: "doctor", leaseSeconds: 60, busyProjects: [projectId]) { return j }
                return try await scratch.claim(owner: "doctor", leaseSeconds: 60)
            }), let second {
                _ = await step("deferForProject ($inc, $unset, wake-up updateMany)") {
                    try await scratch.deferForProject(second, leaseSeconds: 60)
                }
            }
            _ = await step("finish done") {
                try expect(try await scratch.finish(job, .done(JobMetadata())), "the fenced outcome write matched nothing")
            }
            _ = await step("recordSuccess ($addToSet) in a bulk update") {
                try await scratch.recordSuccesses([(projectDocumentId: projectId, jobId: job.id)])
            }
            _ = await step("releaseUnwaitedLocks (bulk deleteOne)") {
                try await scratch.releaseUnwaitedLocks([(job: job, projectId: projectId)])
            }
            _ = await step("releaseWaitedLock (deleteOne, wake-up updateMany)") {
                try await scratch.releaseWaitedLock(job, projectId: projectId)
            }
        }
        if let again = await step("claim after a wake-up", { try await scratch.claim(owner: "doctor", leaseSeconds: 60) }),
           let again {
            _ = await step("finish retry ($push errors $each $slice)") {
                try await scratch.finish(again, .retry(JobFailure(.internal, "doctor"), notBefore: Date().addingTimeInterval(3600)))
            }
            _ = await step("nextDue (a date read back as a date)") {
                let due = try await scratch.nextDue()
                try expect(due != nil, "the deferred job's notBefore is not read back as a date")
            }
            _ = await step("requestCancel (pending)") { try await scratch.requestCancel(JobStore.idText(again.id)) }
            _ = await step("retry") { try await scratch.retry(JobStore.idText(again.id)) }
            if let third = await step("claim after retry", { try await scratch.claim(owner: "doctor", leaseSeconds: 60) }),
               let third {
                _ = await step("requestCancel (running), then the lease read's cancel flag") {
                    try expect(try await scratch.requestCancel(JobStore.idText(third.id)), "the cancel's update matched nothing")
                    let answer = try await scratch.leaseFlags([third.token])
                    try expect(answer.contradiction == nil && answer.held == [third.token: true],
                               "the lease read does not show the cancel: \(answer.contradiction.map { "\($0)" } ?? "\(answer.held)")")
                }
                _ = await step("finish failed") { try await scratch.finish(third, .failed(JobFailure(.internal, "doctor"))) }
            }
        }
        // A lease that lapses (claimed 2 minutes ago for 1 s): claimed again with
        // the lapse recorded, then failed lease_lost at its last attempt.
        _ = await step("insertJob") { try await scratch.insertJob(projectId: "doctor-lapse", spec: ["nodes": []]) }
        if await step("claim (a lease that lapses)", {
            try await scratch.claim(owner: "doctor", leaseSeconds: 1, now: Date().addingTimeInterval(-120))
        }) != nil {
            _ = await step("claim of a lapsed lease (guarded updateOne, $push errors and logs)") {
                try await scratch.claim(owner: "doctor", leaseSeconds: 1, maxAttempts: 3, now: Date().addingTimeInterval(-60))
            }
            _ = await step("claim failing a lapsed lease at maxAttempts (lease_lost)") {
                try await scratch.claim(owner: "doctor", leaseSeconds: 60, maxAttempts: 2)
            }
        }
        _ = await step("sweepCancelledPending") { try await scratch.sweepCancelledPending() }
        _ = await step("jobs (list)") { try await scratch.jobs(status: "failed", limit: 5) }
        _ = await step("job (by id)") { try await scratch.job("doctor") }
        _ = await step("project") { try await scratch.project(projectId) }
        for name in [scratch.jobsName, scratch.projectsName, scratch.locksName, scratch.markersName] {
            _ = try? await pool.command(["drop": .string(name)])
        }
        return results
    }
}
