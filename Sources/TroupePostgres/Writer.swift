import Dispatch
import Synchronization
import Troupe

/// The store's writing connection, on a thread of its own, committing the work of many agents together.
///
/// Group commit: callers enqueue jobs and wait; the writer thread takes every job waiting, applies them in one
/// transaction and completes them all after `COMMIT`. A job that fails its own checks (a fenced commit) fails
/// alone; if the server refuses a statement mid-batch, PostgreSQL has aborted the transaction, so the batch is
/// rolled back (in-memory state included) and each job is applied again in a transaction of its own, so that one
/// bad job cannot fail the others. A lost connection is opened again before the next batch.
final class Writer: Sendable {
    private struct Queue {
        var jobs: [any Job] = []
        /// Events to append to the log, written with the next batch: no job (and no wake-up) each.
        var events: [Event] = []
        var closed = false
    }

    private let queue = Mutex(Queue())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let session: Session
    private let heartbeat: DispatchTimeInterval
    /// Whether a standalone job (maintenance) is running: only then does a cancellation cancel the statement.
    private let standaloneRunning = Flag()

    init(session: Session, heartbeat: Duration) throws {
        self.session = session
        let milliseconds = heartbeat.components.seconds * 1000 + heartbeat.components.attoseconds / 1_000_000_000_000_000
        self.heartbeat = .milliseconds(Int(max(1, milliseconds)))
        if let failure = startThread(named: "troupe-pg", { [self] in loop() }) {
            throw TroupeError(
                .storage,
                "cannot start the PostgreSQL writer thread for \(session.location): \(failure). The process may have "
                    + "reached its thread limit; free threads or raise the limit, then retry."
            )
        }
    }

    private func submit(_ job: any Job) {
        let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.closed else { return (false, false) }
            queue.jobs.append(job)
            return (true, queue.jobs.count == 1 && queue.events.isEmpty)
        }
        guard accepted else { return job.fail(PostgresStore.closedError()) }
        if wake { wakeUp.signal() }
    }

    /// Queues an event for the log; it is written with the next batch.
    func submit(_ event: Event) {
        let wake = queue.withLock { queue -> Bool in
            guard !queue.closed else { return false }
            queue.events.append(event)
            return queue.events.count == 1 && queue.jobs.isEmpty
        }
        if wake { wakeUp.signal() }
    }

    /// Commits `commit` with the commits queued next to it, set-based (``Session/commit(batch:)``); returns the ids
    /// of the messages it sent.
    func commit(_ commit: consuming Commit) async throws -> [Int64] {
        // The job takes the commit as it is (no copy); the continuation is its last part.
        let job = CommitJob(commit)
        return try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<[Int64], any Error>) in
            job.continuation = continuation
            submit(job)
        }
    }

    /// Runs `body` on the writer thread, inside a batch transaction, and returns its result.
    func perform<T: Sendable>(sync: Bool = false, _ body: @escaping @Sendable (Session) throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
            submit(PendingJob(body: body, continuation: continuation, sync: sync, standalone: nil))
        }
    }

    /// Runs `body` on the writer thread in a transaction of its own; cancelling the caller cancels its statement
    /// on the server (or, before it starts, keeps it from starting) and rolls it back.
    func performAlone<T: Sendable>(_ body: @escaping @Sendable (Session) throws -> T) async throws -> T {
        let cancelled = Flag()
        let session = self.session
        let running = self.standaloneRunning
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                let guarded: @Sendable (Session) throws -> T = { session in
                    if cancelled.isRaised { throw CancellationError() }
                    return try body(session)
                }
                submit(PendingJob(body: guarded, continuation: continuation, sync: true, standalone: cancelled))
            }
        } onCancel: {
            cancelled.raise()
            if running.isRaised { session.cancelStatement() }
        }
    }

    /// Stops the thread after the jobs already queued, and closes the connection.
    func close() {
        let first = queue.withLock { queue -> Bool in
            defer { queue.closed = true }
            return !queue.closed
        }
        guard first else { return }
        wakeUp.signal()
        finished.wait()
    }

    // MARK: The writer thread

    private func loop() {
        var lastHeartbeat = DispatchTime.now()
        while true {
            _ = wakeUp.wait(timeout: lastHeartbeat + heartbeat)
            // One heartbeat per interval, busy or idle: the worker's liveness is its row's age.
            if DispatchTime.now() >= lastHeartbeat + heartbeat {
                session.heartbeat()
                lastHeartbeat = DispatchTime.now()
            }
            let (jobs, events, closed) = queue.withLock { queue in
                defer {
                    queue.jobs.removeAll(keepingCapacity: true)
                    queue.events.removeAll(keepingCapacity: true)
                }
                return (queue.jobs, queue.events, queue.closed)
            }
            if jobs.isEmpty, events.isEmpty {
                if closed { break }
                continue
            }
            var pendingEvents = events
            var index = 0
            while index < jobs.count {
                if jobs[index].standalone != nil {
                    if !pendingEvents.isEmpty { writeEvents(pendingEvents) }
                    pendingEvents = []
                    run(alone: jobs[index])
                    index += 1
                    continue
                }
                var end = index
                while end < jobs.count, jobs[end].standalone == nil { end += 1 }
                run(batch: Array(jobs[index..<end]), events: pendingEvents)
                pendingEvents = []
                index = end
            }
            if !pendingEvents.isEmpty { writeEvents(pendingEvents) }
            if closed, queue.withLock({ $0.jobs.isEmpty }) { break }
        }
        session.connection.rollback()
        finished.signal()
    }

    /// Events in a transaction of their own; a failure skips them (a log, not the work).
    private func writeEvents(_ events: [Event]) {
        try? session.reconnectIfNeeded()
        try? session.transaction(sync: false) { try session.record(events) }
    }

    private func run(alone job: any Job) {
        do {
            try session.reconnect(within: session.outageLimit)
        } catch {
            return job.fail(session.translate(error))
        }
        standaloneRunning.raise()
        defer { standaloneRunning.lower() }
        do {
            // A job that fails its own checks after writing (a fork refused once copied) leaves nothing behind.
            try session.transaction(sync: true) {
                try job.apply(session)
                if job.failed { throw RolledBack() }
            }
            job.complete()
        } catch is RolledBack {
            job.complete()
        } catch {
            job.fail(session.translate(error))
        }
    }

    private func run(batch: [any Job], events: [Event], retried: Bool = false) {
        do {
            // A server that restarts or fails over answers again within seconds: the batch waits for it (its
            // callers' commits stall, no agent crashes), up to the outage limit, after which it fails.
            try session.reconnect(within: session.outageLimit)
        } catch {
            if !events.isEmpty { writeEvents(events) }
            for job in batch { job.fail(session.translate(error)) }
            return
        }
        let sync = batch.contains { $0.sync }
        let started = ContinuousClock.now
        do {
            try session.transaction(sync: sync) {
                if !events.isEmpty { try session.record(events) }
                var index = 0
                while index < batch.count {
                    guard batch[index] is CommitJob else {
                        try batch[index].apply(session)
                        index += 1
                        continue
                    }
                    // Consecutive commits go to the database together, in one statement (``Session/commit(batch:)``).
                    var end = index + 1
                    while end < batch.count, batch[end] is CommitJob { end += 1 }
                    try CommitJob.apply(batch[index..<end].map { $0 as! CommitJob }, session)
                    index = end
                }
            }
        } catch {
            let lost = (error as? PostgresError)?.isConnectionLost == true
            if lost, !retried, session.connection.isHealthy == false {
                // The session died under the batch (a server restart) and the server did not commit it (the
                // transaction asks, when the session dies during COMMIT): once more, on a new session.
                return run(batch: batch, events: events, retried: true)
            }
            if !events.isEmpty { writeEvents(events) }
            guard batch.count > 1 else {
                for job in batch { job.fail(session.translate(error)) }
                return
            }
            // Find out which job the server refused, and spare the others.
            for job in batch { run(batch: [job], events: [], retried: retried) }
            return
        }
        ProcessMetrics.commit(store: "postgres", batch: batch.count, duration: ContinuousClock.now - started)
        for job in batch { job.complete() }
    }
}

/// Work for the writer thread: applied inside a transaction, completed after it commits.
protocol Job: AnyObject, Sendable {
    /// Wait for the server's WAL flush before completing.
    var sync: Bool { get }
    /// For a standalone job, its cancellation flag; `nil` for a job that joins a batch.
    var standalone: Flag? { get }
    /// Does the work and keeps its outcome. Throws only the server's errors, which abort the whole transaction;
    /// the job's own failures (a fenced commit) are kept as its outcome, so its writes must follow its checks.
    func apply(_ session: Session) throws
    /// Whether the kept outcome is a failure.
    var failed: Bool { get }
    /// Delivers the kept outcome, once the transaction has committed.
    func complete()
    /// Delivers `error` instead.
    func fail(_ error: any Error)
}

/// A job whose caller awaits a `T`.
///
/// `@unchecked Sendable` because `outcome` is its only mutable state and only the writer thread touches it
/// (`apply`, `complete` and `fail` run on the writer's loop, or `fail` in `submit` before the job was queued).
final class PendingJob<T: Sendable>: Job, @unchecked Sendable {
    let sync: Bool
    let standalone: Flag?
    private let body: @Sendable (Session) throws -> T
    private let continuation: UnsafeContinuation<T, any Error>
    private var outcome: Result<T, any Error>?

    init(
        body: @escaping @Sendable (Session) throws -> T,
        continuation: UnsafeContinuation<T, any Error>,
        sync: Bool,
        standalone: Flag?
    ) {
        self.body = body
        self.continuation = continuation
        self.sync = sync
        self.standalone = standalone
    }

    func apply(_ session: Session) throws {
        do {
            outcome = .success(try body(session))
        } catch let error as PostgresError {
            outcome = nil
            throw error
        } catch {
            outcome = .failure(error)
        }
    }

    var failed: Bool {
        if case .failure = outcome { return true }
        return false
    }

    func complete() { continuation.resume(with: outcome ?? .failure(CancellationError())) }

    func fail(_ error: any Error) { continuation.resume(throwing: error) }
}

/// A commit, applied together with the commits next to it in its batch.
///
/// `@unchecked Sendable` for the same reason as ``PendingJob``: `outcome` is touched by the writer thread only, and
/// `continuation` is written once by the committing task before it submits the job (the queue's lock orders that
/// write before the writer thread's reads).
final class CommitJob: Job, @unchecked Sendable {
    let commit: Commit
    /// Set once, by the committing task, before it submits the job (the queue's lock orders it before any read).
    var continuation: UnsafeContinuation<[Int64], any Error>?
    private var outcome: Result<[Int64], any Error>?

    /// Takes `commit` over; its continuation is set before the job is submitted.
    init(_ commit: consuming Commit) {
        self.commit = commit
    }

    var sync: Bool { commit.sync }
    var standalone: Flag? { nil }

    static func apply(_ jobs: [CommitJob], _ session: Session) throws {
        for job in jobs { job.outcome = nil }
        let outcomes = try session.commit(batch: jobs.map(\.commit))
        for (job, outcome) in zip(jobs, outcomes) { job.outcome = outcome }
    }

    func apply(_ session: Session) throws { try Self.apply([self], session) }

    var failed: Bool {
        if case .failure = outcome { return true }
        return false
    }

    func complete() { continuation!.resume(with: outcome ?? .failure(CancellationError())) }

    func fail(_ error: any Error) { continuation!.resume(throwing: error) }
}

/// Thrown inside a standalone job's transaction to roll it back when the job failed its own checks.
private struct RolledBack: Error {}

/// A flag raised from any thread (a cancellation) and read by the writer thread.
final class Flag: Sendable {
    private let raised = Atomic<Bool>(false)

    var isRaised: Bool { raised.load(ordering: .sequentiallyConsistent) }

    func raise() { raised.store(true, ordering: .sequentiallyConsistent) }

    func lower() { raised.store(false, ordering: .sequentiallyConsistent) }
}
