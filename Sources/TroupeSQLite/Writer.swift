import Glibc
import Dispatch
import Synchronization
import Troupe

/// The one writing connection of a database, on its own thread, committing the work of many agents together.
///
/// Group commit: callers enqueue jobs and wait; the writer thread takes every job waiting, applies them in one
/// `BEGIN IMMEDIATE` transaction and completes them all after `COMMIT`. Under load a batch holds hundreds of
/// checkpoints for the price of one transaction (and, at `synchronous=FULL`, one `fsync`). A job that fails its
/// own checks (a fenced commit) fails alone; if SQLite itself fails mid-batch (disk full, I/O error), the batch is
/// rolled back and each job is retried in a transaction of its own, so that one bad job cannot fail the others.
///
/// The connection and everything it prepares stay on the writer thread; callers never block the cooperative
/// thread pool, and the thread pool never runs SQLite.
final class Writer: Sendable {
    private struct Queue {
        var jobs: [any WriterJob] = []
        /// Events to append to the log, written with the next batch: no job (and no wake-up) each.
        var events: [Event] = []
        var closed = false
    }

    private let queue = Mutex(Queue())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let session: WriterSession

    /// - Throws: ``TroupeError/Code/storage`` if the writer thread cannot be started (the body never runs, so
    ///   nothing would ever complete a job or let ``close()`` return).
    init(session: WriterSession) throws {
        self.session = session
        if let failure = startThread(named: "troupe-sqlite", { [self] in loop() }) {
            session.close()
            throw TroupeError(
                .storage,
                "cannot start the database writer thread for '\(session.path)': \(failure). The process may have "
                    + "reached its thread limit; free threads or raise the limit, then retry."
            )
        }
    }

    /// Enqueues `job`; the writer thread picks it up at once, batched with whatever else is waiting.
    func submit(_ job: any WriterJob) {
        let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.closed else { return (false, false) }
            queue.jobs.append(job)
            return (true, queue.jobs.count == 1 && queue.events.isEmpty)
        }
        guard accepted else { return job.fail(SQLiteStore.closedError()) }
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

    /// Runs `body` on the writer thread, inside a batch transaction, and returns its result.
    ///
    /// - Parameter lockAttempts: How many busy timeouts the job waits for another process's write lock before it
    ///   fails with `busy`: ``lockAttempts`` for the run's own work, 1 for an operator's request (a resume), which
    ///   must answer within the busy timeout it was given.
    func perform<T: Sendable>(
        sync: Bool = false,
        lockAttempts: Int = Writer.lockAttempts,
        _ body: @escaping @Sendable (WriterSession) throws -> T
    ) async throws -> T {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
            submit(
                PendingJob(body: body, continuation: continuation, sync: sync, standalone: false, lockAttempts: lockAttempts)
            )
        }
    }

    /// Runs `body` on the writer thread outside any transaction, alone; cancelling the caller interrupts it.
    func performAlone<T: Sendable>(_ body: @escaping @Sendable (WriterSession) throws -> T) async throws -> T {
        let session = self.session
        // Checked by the job's statements as they run: a cancellation before the job (or one of its statements)
        // starts stops it too, which `sqlite3_interrupt` alone would miss.
        let cancelled = StopFlag()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                let stoppable: @Sendable (WriterSession) throws -> T = { session in
                    try session.connection.run(stoppingWhen: cancelled) { try body(session) }
                }
                submit(PendingJob(body: stoppable, continuation: continuation, sync: false, standalone: true))
            }
        } onCancel: {
            cancelled.raise()
            session.interruptStandalone()
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
        while true {
            let timedOut = wakeUp.wait(timeout: .now() + session.heartbeatInterval) == .timedOut
            let (jobs, taken, closed) = queue.withLock { queue in
                defer {
                    queue.jobs.removeAll(keepingCapacity: true)
                    queue.events.removeAll(keepingCapacity: true)
                }
                return (queue.jobs, queue.events, queue.closed)
            }
            if jobs.isEmpty, taken.isEmpty {
                if closed { break }
                if timedOut { session.heartbeat() }
                continue
            }
            // Events ride with the first batch of jobs, or get a transaction of their own.
            var events = taken
            if !events.isEmpty, jobs.first?.standalone != false {
                try? session.transaction(sync: false) { try session.record(events) }
                events = []
            }
            var index = 0
            while index < jobs.count {
                if jobs[index].standalone {
                    run(alone: jobs[index])
                    index += 1
                    continue
                }
                var end = index
                while end < jobs.count, !jobs[end].standalone { end += 1 }
                run(batch: jobs[index..<end], events: events)
                events = []
                index = end
            }
            if closed, queue.withLock({ $0.jobs.isEmpty }) { break }
        }
        session.close()
        finished.signal()
    }

    private func run(alone job: any WriterJob) {
        session.beginStandalone()
        defer { session.endStandalone() }
        do {
            try job.apply(session)
            job.complete()
        } catch {
            job.fail(session.translate(error))
        }
    }

    /// How many times a batch tries to take the write lock (each try waits up to the busy timeout) before its jobs
    /// fail: another process's long transaction (a large run starting, `troupe prune`) delays this run's commits
    /// instead of failing them.
    static let lockAttempts = 4

    private func run(batch slice: ArraySlice<any WriterJob>, events: [Event] = []) {
        var batch = Array(slice)
        let sync = batch.contains { $0.sync }
        let started = ContinuousClock.now
        var attempt = 1
        while true {
            do {
                try session.transaction(sync: sync) {
                    // A failed event write must not fail the batch's jobs: events are a log, not the work.
                    if !events.isEmpty { try? session.record(events) }
                    for job in batch {
                        // Other work may read or write the checkpoint tables: the commits' rows go in first.
                        if !job.isCommit { try session.settleCheckpoints() }
                        try job.apply(session)
                    }
                }
                break
            } catch let error as SQLiteError where error.isBusy && attempt < (error.isTableLocked ? 200 : Self.lockAttempts) {
                // Rolled back whole (in-memory state included): the batch can be applied again. A busy file lock
                // waited out the busy timeout inside SQLite; a shared-cache table lock (in-memory databases) is not
                // waited on by SQLite, so wait here, 5 ms at a time, up to a second.
                if error.isTableLocked {
                    usleep(5000)
                } else {
                    // Jobs that have waited as long as they may fail now; the others try again.
                    let (spent, patient) = (batch.filter { $0.lockAttempts <= attempt }, batch.filter { $0.lockAttempts > attempt })
                    for job in spent { job.fail(session.translate(error)) }
                    batch = patient
                    if batch.isEmpty { return }
                }
                attempt += 1
                continue
            } catch {
                if !events.isEmpty { try? session.transaction(sync: false) { try session.record(events) } }
                guard batch.count > 1, !((error as? SQLiteError)?.isBusy ?? false) else {
                    for job in batch { job.fail(session.translate(error)) }
                    return
                }
                // Find out which job SQLite refused, and spare the others.
                for job in batch { run(batch: [job]) }
                return
            }
        }
        ProcessMetrics.commit(store: "sqlite", batch: batch.count, duration: ContinuousClock.now - started)
        complete(batch)
    }

    /// Batches at least this large are completed by a task on the cooperative pool, not by the writer thread.
    static let handOffCompletions = 16

    /// Delivers the outcomes of a committed batch. Resuming a waiting agent costs a few hundred nanoseconds (its
    /// task goes onto an executor's queue); for a batch of hundreds that was a twentieth of the writer thread's
    /// time, and the writer is the one thread every commit waits for. A large batch is handed to one task on the
    /// pool, which resumes them while the writer starts the next batch; a small one is completed here, at once.
    private func complete(_ batch: [any WriterJob]) {
        guard batch.count >= Self.handOffCompletions else {
            for job in batch { job.complete() }
            return
        }
        Task.detached {
            for job in batch { job.complete() }
        }
    }
}

/// Work for the writer thread: applied inside a batch's transaction, completed after it commits.
protocol WriterJob: AnyObject, Sendable {
    /// Wait for `fsync` before completing.
    var sync: Bool { get }
    /// Runs outside any transaction (pragmas, `VACUUM`), alone.
    var standalone: Bool { get }
    /// How many busy timeouts it waits for another process's write lock (see ``Writer/perform(sync:lockAttempts:_:)``).
    var lockAttempts: Int { get }
    /// A ``CommitJob``: its checkpoint waits for the end of the batch (``WriterSession/flushCheckpoints()``). Any
    /// other job runs after the pending checkpoints are written.
    var isCommit: Bool { get }
    /// Does the work and keeps its outcome. Throws only SQLite's errors, which abort the whole batch; the job's own
    /// failures (a fenced commit) are kept as its outcome and fail it alone, so its writes must follow its checks.
    func apply(_ session: WriterSession) throws
    /// Delivers the kept outcome, once the transaction has committed.
    func complete()
    /// Delivers `error` instead.
    func fail(_ error: any Error)
}

/// A job whose caller awaits a `T`.
///
/// `@unchecked Sendable` because `outcome` is the only mutable state and no two threads touch it at once: `apply`
/// and `fail` are called from the writer's loop (or, for `fail` on a closed writer, from `submit` before the job was
/// ever queued), and so is `complete`, or from the task the writer hands a committed batch to, which it creates
/// after the last `apply` (creating the task orders the writes before its reads) and never touches again.
final class PendingJob<T: Sendable>: WriterJob, @unchecked Sendable {
    let sync: Bool
    let standalone: Bool
    let lockAttempts: Int
    private let body: @Sendable (WriterSession) throws -> T
    private let continuation: UnsafeContinuation<T, any Error>
    private var outcome: Result<T, any Error>?

    init(
        body: @escaping @Sendable (WriterSession) throws -> T,
        continuation: UnsafeContinuation<T, any Error>,
        sync: Bool,
        standalone: Bool,
        lockAttempts: Int = Writer.lockAttempts
    ) {
        self.body = body
        self.continuation = continuation
        self.sync = sync
        self.standalone = standalone
        self.lockAttempts = lockAttempts
    }

    var isCommit: Bool { false }

    func apply(_ session: WriterSession) throws {
        outcome = nil  // an earlier, rolled-back attempt's outcome is void
        outcome = try keeping { try body(session) }
    }

    func complete() {
        continuation.resume(with: outcome ?? .failure(CancellationError()))
    }

    func fail(_ error: any Error) {
        continuation.resume(throwing: error)
    }
}

/// A commit: the hot path, so a concrete class with the commit in it. A ``PendingJob`` would cost a closure box
/// per commit, and its generic `complete` looked up `Result<[Int64], any Error>`'s metadata at run time (about a
/// twentieth of the writer thread's time in the 1,000-agent checkpoint benchmark).
///
/// `@unchecked Sendable` for the reason ``PendingJob`` is: `outcome` is written by the writer thread before
/// `complete` reads it, on that thread or on the task the committed batch was handed to. `continuation` is set once,
/// by the committing task, before it submits the job (the queue's lock orders that write before the writer's reads).
final class CommitJob: WriterJob, @unchecked Sendable {
    let commit: Commit
    var continuation: UnsafeContinuation<[Int64], any Error>?
    private var outcome: Result<[Int64], any Error>?

    /// Takes `commit` over; its continuation is set before the job is submitted.
    init(_ commit: consuming Commit) {
        self.commit = commit
    }

    var sync: Bool { commit.sync }
    var standalone: Bool { false }
    var lockAttempts: Int { Writer.lockAttempts }
    var isCommit: Bool { true }

    func apply(_ session: WriterSession) throws {
        outcome = nil  // an earlier, rolled-back attempt's outcome is void
        outcome = try keeping { try session.commit(commit) }
    }

    func complete() {
        continuation!.resume(with: outcome ?? .failure(CancellationError()))
    }

    func fail(_ error: any Error) {
        continuation!.resume(throwing: error)
    }
}

/// Runs a job's `body` and keeps its outcome: its result, or its own failure (a fenced commit), which fails the job
/// alone. SQLite's errors are thrown on: they abort the whole batch (``WriterJob/apply(_:)``).
private func keeping<T>(_ body: () throws -> T) throws -> Result<T, any Error> {
    do {
        return .success(try body())
    } catch let error as SQLiteError {
        throw error
    } catch {
        return .failure(error)
    }
}
