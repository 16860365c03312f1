import ArgumentParser
import FoundationEssentials
import Glibc
import Synchronization
import Troupe
import UnixSignals

/// `troupe worker`: a process that drives runs from a store it shares with other workers.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Drive runs from a store shared with other workers (PostgreSQL): claim, resume, take over.",
        discussion: """
            The worker registers in the store (its id never reused), heartbeats once a second, and twice a second \
            (± 20 %) evicts workers found dead and claims up to --capacity runs of the blueprints it has: runs \
            submitted with `troupe run --detach`, released by a draining worker, or left by a dead one. It drives \
            each as `troupe resume` would. A worker is dead when the database no longer sees its session (its \
            process or host died) or when its heartbeat is stale; a worker that cannot renew its heartbeat for 4 s \
            stops its runs itself. SIGTERM, SIGINT or `troupe drain WORKER` drain it: every run stops gracefully \
            with a final checkpoint and is released to the other workers, then it exits 0.

            Example:
              troupe worker --database postgres://troupe@db.internal/troupe --capacity 50 --tag eu-west
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Runs it drives at most.", valueName: "n"))
    var capacity = 100

    @Option(name: .customLong("tag"), help: ArgumentHelp("A label for `troupe workers` (repeatable).", valueName: "tag"))
    var tags: [String] = []

    @Option(
        help: ArgumentHelp(
            "This worker's build, such as a release or commit id (default: Troupe's version). A run stays with workers of the build that last drove it while one lives; then any worker may take it.",
            valueName: "label"
        )
    )
    var build: String = TroupeRelease.version

    func validate() throws {
        guard capacity >= 1, capacity <= 1_000_000 else {
            throw ValidationError("--capacity must be 1 to 1000000 runs, not \(capacity)")
        }
        guard !build.isEmpty, build.count <= 64, !build.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw ValidationError("--build must be 1 to 64 characters without spaces, not '\(build)'")
        }
    }

    @OptionGroup var telemetry: TelemetryOptions

    func run() async throws {
        try await reportingErrors {
            try await withTelemetry(telemetry) {
            try await global.withStore(mustExist: false) { store in
                guard let pool = store as? any WorkerPool else {
                    throw TroupeError(
                        .invalidSpec,
                        "troupe worker needs a store that workers share, such as --database postgres://USER@HOST/DATABASE; "
                            + "\(store.location) is driven by one process at a time (use `troupe run` or `troupe resume`)."
                    )
                }
                try await WorkerLoop(pool: pool, global: global, capacity: capacity, tags: tags, build: build).serve()
            }
            }
        }
    }
}

/// The worker's one loop: every change of its state (the runs it drives, draining) happens here, in order, from
/// one stream of inputs — ticks, runs that ended, signals.
struct WorkerLoop {
    let pool: any WorkerPool
    let global: GlobalOptions
    let capacity: Int
    let tags: [String]
    let build: String

    enum Input: Sendable {
        case tick
        case ended(RunID, String)
        case signal
    }

    func serve() async throws {
        let blueprints = Catalog.entries.map(\.name)
        let id = try await pool.registerWorker(
            WorkerRegistration(build: build, tags: tags, capacity: capacity, blueprints: blueprints)
        )
        say("troupe: worker \(id) on \(OwnerLiveness.localHost) (pid \(getpid())), build \(build): capacity \(capacity), blueprints \(blueprints.joined(separator: ", "))")
        flushOutput()
        let (inputs, input) = AsyncStream.makeStream(of: Input.self)
        let ticker = Task {
            while !Task.isCancelled {
                // 0.5 s ± 20 %: workers started together do not scan in step. A scan that finds nothing writes
                // nothing (its transaction takes no id), so scanning often costs the database reads only.
                try? await Task.sleep(for: .milliseconds(Int.random(in: 400...600)))
                input.yield(.tick)
            }
        }
        let signals = Task {
            for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) { input.yield(.signal) }
        }
        defer {
            ticker.cancel()
            signals.cancel()
        }
        var runs: [RunID: (run: Run, task: Task<Void, Never>)] = [:]
        var draining = false
        var signalled = 0
        input.yield(.tick)
        loop: for await event in inputs {
            switch event {
            case .tick:
                if !draining, pool.isDraining {
                    draining = true
                    note("drain requested: stopping \(runs.count) run(s) gracefully")
                    for entry in runs.values { entry.run.shutdown() }
                }
                if draining {
                    if runs.isEmpty { break loop }
                    continue
                }
                do {
                    let evicted = try await pool.evictDeadWorkers()
                    if evicted > 0 { note("evicted \(evicted) dead worker(s); their runs are free to claim") }
                    let free = capacity - runs.count
                    guard free > 0 else { continue }
                    for record in try await pool.claimRuns(limit: free) {
                        runs[record.id] = start(record, input: input)
                    }
                } catch {
                    note("could not reach the store: \(error); retrying")
                }
            case .ended(let run, let how):
                runs[run] = nil
                // A run stopped by draining was handed back (pending) by the store with its final commit.
                note(draining && how == "stopped" ? "run \(run) stopped and released to the other workers" : "run \(run) \(how)")
                if draining, runs.isEmpty { break loop }
            case .signal:
                signalled += 1
                if signalled > 1 {
                    note("cancelling \(runs.count) run(s)")
                    for entry in runs.values { entry.task.cancel() }
                    continue
                }
                draining = true
                note("draining: stopping \(runs.count) run(s) gracefully (final checkpoints); again to cancel")
                for entry in runs.values { entry.run.shutdown() }
                if runs.isEmpty { break loop }
            }
        }
        try? await pool.retire()
        note("worker \(id) drained; exiting")
    }

    private func note(_ text: String) {
        say("troupe: \(text)")
        flushOutput()
    }

    /// Builds and drives a claimed run; says how it ended through `input`.
    private func start(_ record: RunRecord, input: AsyncStream<Input>.Continuation) -> (run: Run, task: Task<Void, Never>)? {
        let run: Run
        do {
            let entry = try Catalog.entry(record.blueprint)
            run = try RunCommand.makeRun(
                entry, parameters: try entry.resolve(record.parameters), durability: record.durability, id: record.id,
                store: pool, global: global
            )
        } catch {
            note("run \(record.id) of '\(record.blueprint)' cannot be built here: \(error); it is marked failed")
            let store = pool
            Task {
                if (try? await store.attach(record)) != nil {
                    await store.detach(record.id, outcome: .failed, error: "cannot be built by worker: \(error)")
                }
            }
            return nil
        }
        note("claimed run \(record.id) of '\(record.blueprint)'")
        let task = Task {
            let started = Latch<Void>()
            let root = run.blueprint.name
            run.addEventSink { event in
                if event.name == root, event.incarnation == 0, case .started = event.kind { started.open(with: ()) }
            }
            let flags = Flags()
            let how: String = await withTaskGroup(of: String?.self) { group in
                group.addTask {
                    do {
                        try await run.run()
                        return flags.completed.load(ordering: .relaxed) ? "completed" : "stopped"
                    } catch let error as TroupeError where error.code == .leaseHeld {
                        return "lost: \(error.message)"
                    } catch {
                        return "failed: \(error)"
                    }
                }
                group.addTask {
                    if await RunDriver.completeWhenDone(run, started: started) { flags.completed.store(true, ordering: .relaxed) }
                    return nil
                }
                var how = "stopped"
                while let next = await group.next() {
                    if let next {
                        how = next
                        break
                    }
                }
                group.cancelAll()
                return how
            }
            input.yield(.ended(record.id, how))
        }
        return (run, task)
    }
}

/// `troupe workers`: the workers registered in a shared store.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List the workers of a shared store (PostgreSQL): host, build, runs, heartbeat, draining.",
        discussion: """
            ALIVE is whether the database sees the worker's session and a recent heartbeat; a dead worker is \
            evicted by the next live one within a second or so, and its runs taken over. Processes that drive only \
            their own runs (`troupe run`, embedded runs) are listed with capacity 0. With --json, one JSON object per \
            worker.
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            try await global.withStore(readOnly: true) { store in
                let pool = try sharedPool(store)
                let workers = try await pool.workers()
                if global.json {
                    printJSON(workers)
                    return
                }
                var rows: [[String]] = []
                for worker in workers {
                    rows.append([
                        String(worker.id), worker.host, String(worker.pid), worker.build.isEmpty ? "-" : worker.build,
                        "\(worker.runs)/\(worker.capacity)", "\((worker.heartbeatAge * 10).rounded() / 10)s",
                        worker.alive ? "yes" : "no", worker.draining ? "yes" : "no",
                        worker.tags.isEmpty ? "-" : worker.tags.joined(separator: ","),
                    ])
                }
                printTable(["WORKER", "HOST", "PID", "BUILD", "RUNS", "HEARTBEAT", "ALIVE", "DRAINING", "TAGS"], rows)
            }
        }
    }
}

/// `troupe drain WORKER`: asks a worker to release its runs and exit.
struct DrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Ask a worker to stop its runs gracefully, release them to the other workers, and exit.",
        discussion: """
            With --wait, returns once the worker has retired (exit 0), or after --timeout seconds (exit 75). A \
            rolling deploy: start workers of the new build, then drain the old ones.

            Example:
              troupe drain 3 --wait
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The worker's id (see `troupe workers`).")
    var worker: Int64

    @Flag(help: "Wait until the worker has released its runs and retired.")
    var wait = false

    @Option(help: ArgumentHelp("Seconds --wait waits at most.", valueName: "seconds"))
    var timeout: Double = 120

    func validate() throws {
        do {
            _ = try DurationInput.seconds(timeout, "--timeout")
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        try await reportingErrors {
            try await global.withStore { store in
                let pool = try sharedPool(store)
                try await pool.drain(worker: worker)
                guard wait else {
                    say("troupe: worker \(worker) asked to drain")
                    return
                }
                let deadline = ContinuousClock.now + .milliseconds(Int64(max(0, timeout) * 1000))
                while ContinuousClock.now < deadline {
                    guard try await pool.workers().contains(where: { $0.id == worker && $0.alive }) else {
                        say("troupe: worker \(worker) drained")
                        return
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                throw TroupeError(.busy, "worker \(worker) is still draining after \(timeout)s; `troupe workers` shows it.")
            }
        }
    }
}

/// `store` as a store shared by workers, or the error for `workers` and `drain` on any other store.
private func sharedPool(_ store: any OperatorStore) throws -> any WorkerPool {
    guard let pool = store as? any WorkerPool else {
        throw TroupeError(.invalidSpec, "\(store.location) has no workers: only a shared store (postgres://…) does.")
    }
    return pool
}
