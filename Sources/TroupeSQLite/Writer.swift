import Dispatch
import Synchronization

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
    /// A unit of work for the writer thread. `apply` runs inside the batch's transaction; `complete` runs after
    /// it committed (with the value `apply` returned) or failed.
    struct Job: Sendable {
        /// Runs inside the transaction. Throwing a non-SQLite error fails this job only; its writes must come after
        /// its checks.
        let apply: @Sendable (WriterSession) throws -> any Sendable
        let complete: @Sendable (Result<any Sendable, any Error>) -> Void
        /// Wait for `fsync` before completing.
        let sync: Bool
        /// Runs outside any transaction (pragmas, `VACUUM`), alone.
        let standalone: Bool
    }

    private struct Queue {
        var jobs: [Job] = []
        var closed = false
    }

    private let queue = Mutex(Queue())
    private let wakeUp = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let session: WriterSession
    private let thread = DispatchQueue(label: "troupe.sqlite.writer")

    init(session: WriterSession) {
        self.session = session
        thread.async { [self] in loop() }
    }

    /// Enqueues `job`; the writer thread picks it up at once, batched with whatever else is waiting.
    func submit(_ job: Job) {
        let (accepted, wake) = queue.withLock { queue -> (Bool, Bool) in
            guard !queue.closed else { return (false, false) }
            queue.jobs.append(job)
            return (true, queue.jobs.count == 1)
        }
        guard accepted else { return job.complete(.failure(SQLiteStore.closedError())) }
        if wake { wakeUp.signal() }
    }

    /// Runs `body` on the writer thread, inside a batch transaction, and returns its result.
    func perform<T: Sendable>(sync: Bool = false, _ body: @escaping @Sendable (WriterSession) throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
            submit(
                Job(
                    apply: { session in try body(session) },
                    complete: { result in
                        switch result {
                        case .success(let value): continuation.resume(returning: value as! T)
                        case .failure(let error): continuation.resume(throwing: error)
                        }
                    },
                    sync: sync,
                    standalone: false
                )
            )
        }
    }

    /// Runs `body` on the writer thread outside any transaction, alone; cancelling the caller interrupts it.
    func performAlone<T: Sendable>(_ body: @escaping @Sendable (WriterSession) throws -> T) async throws -> T {
        let session = self.session
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<T, any Error>) in
                submit(
                    Job(
                        apply: { session in try body(session) },
                        complete: { result in
                            switch result {
                            case .success(let value): continuation.resume(returning: value as! T)
                            case .failure(let error): continuation.resume(throwing: error)
                            }
                        },
                        sync: false,
                        standalone: true
                    )
                )
            }
        } onCancel: {
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
            let (jobs, closed) = queue.withLock { queue in
                defer { queue.jobs.removeAll(keepingCapacity: true) }
                return (queue.jobs, queue.closed)
            }
            if jobs.isEmpty {
                if closed { break }
                if timedOut { session.heartbeat() }
                continue
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
                run(batch: jobs[index..<end])
                index = end
            }
            if closed, queue.withLock({ $0.jobs.isEmpty }) { break }
        }
        session.close()
        finished.signal()
    }

    private func run(alone job: Job) {
        session.beginStandalone()
        defer { session.endStandalone() }
        do {
            job.complete(.success(try job.apply(session)))
        } catch {
            job.complete(.failure(session.translate(error)))
        }
    }

    private func run(batch: ArraySlice<Job>) {
        let sync = batch.contains { $0.sync }
        var results: [Result<any Sendable, any Error>] = []
        results.reserveCapacity(batch.count)
        do {
            try session.transaction(sync: sync) {
                results.removeAll(keepingCapacity: true)
                for job in batch {
                    do {
                        results.append(.success(try job.apply(session)))
                    } catch let error as SQLiteError {
                        throw error
                    } catch {
                        results.append(.failure(error))
                    }
                }
            }
        } catch {
            guard batch.count > 1 else {
                batch.first?.complete(.failure(session.translate(error)))
                return
            }
            // Find out which job SQLite refused, and spare the others.
            for job in batch { run(batch: [job]) }
            return
        }
        for (job, result) in zip(batch, results) { job.complete(result) }
    }
}
