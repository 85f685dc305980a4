import Foundation
import RunnerCore

/// `doctor`'s check that the server accepts every query and update shape the
/// runner uses: the store's own operations, run once each, in the order a
/// job's life makes them, against scratch collections (`doctor_<random>_jobs`,
/// `…_projects`, `…_project_locks`) that are dropped afterwards.
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
            _ = await step("acquireProjectLock (upsert)") { try await scratch.acquireProjectLock(job, projectId: projectId, leaseSeconds: 60) }
            _ = await step("writeProgress (bulk updateOne: $set stage, $push $each $slice)") {
                try await scratch.writeProgress([ProgressUpdate(job: job, stage: .generating, lines: ["doctor"])])
            }
            _ = await step("renewLeases (updateMany on lease tokens, project locks)") {
                try await scratch.renewLeases([job.token], leaseSeconds: 60)
            }
            if let second = await step("claim of a busy project's job", { () async throws -> ClaimedJob? in
                if let j = try await scratch.claim(owner: "doctor", leaseSeconds: 60, busyProjects: [projectId]) { return j }
                return try await scratch.claim(owner: "doctor", leaseSeconds: 60)
            }), let second {
                _ = await step("deferForProject ($inc, $unset, wake-up updateMany)") {
                    try await scratch.deferForProject(second, leaseSeconds: 60)
                }
            }
            _ = await step("finish done") { try await scratch.finish(job, .done(JobMetadata())) }
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
            _ = await step("nextDue") { try await scratch.nextDue() }
            _ = await step("requestCancel (pending)") { try await scratch.requestCancel(JobStore.idText(again.id)) }
            _ = await step("retry") { try await scratch.retry(JobStore.idText(again.id)) }
            if let third = await step("claim after retry", { try await scratch.claim(owner: "doctor", leaseSeconds: 60) }),
               let third {
                _ = await step("requestCancel (running)") { try await scratch.requestCancel(JobStore.idText(third.id)) }
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
        for name in [scratch.jobsName, scratch.projectsName, scratch.locksName] {
            _ = try? await pool.command(["drop": .string(name)])
        }
        return results
    }
}
