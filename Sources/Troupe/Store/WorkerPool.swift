public import FoundationEssentials

/// What a worker process tells a shared store about itself when it registers (``WorkerPool/registerWorker(_:)``).
public struct WorkerRegistration: Sendable, Hashable {
    /// The build it runs (`troupe version`): operators see which workers run which build.
    public var build: String
    /// Labels operators choose (`gpu`, `eu-west`), listed by `troupe workers`.
    public var tags: [String]
    /// How many runs it drives at most.
    public var capacity: Int
    /// The blueprints it can build: it claims only runs of these.
    public var blueprints: [String]

    /// Creates a registration.
    public init(build: String, tags: [String] = [], capacity: Int, blueprints: [String]) {
        self.build = build
        self.tags = tags
        self.capacity = capacity
        self.blueprints = blueprints
    }
}

/// A worker as operators see it (`troupe workers`).
public struct WorkerSummary: Sendable, Codable, Hashable {
    /// Its identifier, never reused: a worker that was evicted and came back has a new one.
    public var id: Int64
    /// Its host name.
    public var host: String
    /// Its process identifier.
    public var pid: Int64
    /// The build it runs.
    public var build: String
    /// Its tags.
    public var tags: [String]
    /// How many runs it drives at most (0: a process that drives its own runs and claims none).
    public var capacity: Int
    /// How many runs it drives now.
    public var runs: Int
    /// When it registered.
    public var startedAt: Date
    /// Its last heartbeat, on the database's clock.
    public var heartbeatAt: Date
    /// Seconds since its last heartbeat, on the database's clock.
    public var heartbeatAge: Double
    /// Whether it was asked to drain (release its runs and exit).
    public var draining: Bool
    /// Whether it is alive: it holds its liveness lock and its heartbeat is not stale.
    public var alive: Bool

    /// Creates a summary.
    public init(
        id: Int64, host: String, pid: Int64, build: String, tags: [String], capacity: Int, runs: Int,
        startedAt: Date, heartbeatAt: Date, heartbeatAge: Double, draining: Bool, alive: Bool
    ) {
        self.id = id
        self.host = host
        self.pid = pid
        self.build = build
        self.tags = tags
        self.capacity = capacity
        self.runs = runs
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
        self.heartbeatAge = heartbeatAge
        self.draining = draining
        self.alive = alive
    }
}

/// A store that worker processes on many hosts share (`troupe worker`): runs are submitted to it, workers claim and
/// drive them, and a worker that dies or goes silent is evicted and its runs taken over by the others.
///
/// Every store instance that drives runs is registered as a worker (a plain process with capacity 0, which claims
/// nothing); a run's lease belongs to its worker. A worker is dead when the database no longer sees its session's
/// liveness lock (its process or host died), or when its heartbeat is stale both by the clock and relative to the
/// newest heartbeat of any worker (so a database restart, which silences everyone, evicts no one). An evicted
/// worker's writes are all rejected (``TroupeError/Code/leaseHeld``); it stops its runs and registers again.
public protocol WorkerPool: OperatorStore {
    /// Registers this store instance as a worker that claims runs (or updates its registration).
    ///
    /// - Returns: Its worker identifier.
    func registerWorker(_ registration: WorkerRegistration) async throws -> Int64

    /// Evicts the workers that are dead and releases their runs for others to claim; returns how many it evicted.
    func evictDeadWorkers() async throws -> Int

    /// Claims up to `limit` runs that wait for a worker (submitted, released by a draining worker, or left by a
    /// dead one) whose blueprint this worker registered, oldest first, each to one worker only.
    func claimRuns(limit: Int) async throws -> [RunRecord]

    /// Records a run for a worker to start: it is ``RunStatus/pending`` until one claims it.
    ///
    /// - Throws: ``TroupeError/Code/duplicateName`` if the store has a run with that id.
    func submit(_ run: RunRecord) async throws

    /// Makes a run that was stopped gracefully and is driven by no one wait for a worker: ``RunStatus/pending``.
    /// (A run a worker stops is handed on by its own ``CheckpointStore/detach(_:outcome:error:)`` already; this is
    /// for a run a process that drove only its own runs left stopped.)
    func release(_ run: RunID) async throws

    /// Every registered worker, oldest first.
    func workers() async throws -> [WorkerSummary]

    /// Asks a worker to drain: stop its runs gracefully, release them to the others, and exit.
    ///
    /// - Throws: ``TroupeError/Code/unknownChild`` if there is no such worker.
    func drain(worker: Int64) async throws

    /// Whether this worker was asked to drain (read with its heartbeat).
    var isDraining: Bool { get }

    /// Ends this worker's registration once it drives no run (a drained worker before it exits): `troupe workers`
    /// no longer lists it.
    func retire() async throws
}
