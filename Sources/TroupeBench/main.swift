// troupe-bench: the engine's speed and memory figures, one `name value unit` line each.
// Build and run in release mode: `swift run -c release troupe-bench [filter]`.
import Dispatch
import Foundation
import Logging
import Synchronization
import Troupe

#if canImport(Glibc)
import Glibc
#endif

// MARK: Harness

let quiet: Logger = {
    var logger = Logger(label: "troupe.bench", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

// In memory, like the Erlang processes the figures are compared with (the library's default is `.checkpointed`).
let configuration = Run.Configuration(logger: quiet, durability: .ephemeral)
let filter = CommandLine.arguments.dropFirst().first

// The child processes of the PostgreSQL figures: a worker, and a committing process.
if ProcessInfo.processInfo.environment["TROUPE_BENCH_WORKER"] != nil { await benchWorkerMain() }
if ProcessInfo.processInfo.environment["TROUPE_BENCH_CHILD"] == "commits", CommandLine.arguments.count == 4,
    let agents = Int(CommandLine.arguments[2]), let perAgent = Int(CommandLine.arguments[3])
{
    try await PostgresBench.commitsChild(url: CommandLine.arguments[1], agents: agents, perAgent: perAgent)
}

// The resume benchmark's child process.
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "--resume-child", let agents = Int(CommandLine.arguments[3]) {
    try await resumeChild(path: CommandLine.arguments[2], agents: agents)
}

func report(_ name: String, _ value: Double, _ unit: String) {
    let rounded = value >= 100 ? String(Int(value.rounded())) : String(Double(Int(value * 100)) / 100)
    print("\(name) \(rounded) \(unit)")
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Returns freed heap memory to the system, so that resident memory measures what is in use (glibc keeps freed
/// pages otherwise). `malloc_trim` is looked up at run time: the Glibc module does not export malloc.h.
func trimHeap() {
    #if canImport(Glibc)
    typealias Trim = @convention(c) (Int) -> Int32
    if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
    #endif
}

/// Resident memory of this process, in bytes.
func residentBytes() -> Int {
    #if canImport(Glibc)
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0
    var resident = 0
    _ = withUnsafeMutablePointer(to: &size) { sizePointer in
        withUnsafeMutablePointer(to: &resident) { residentPointer in
            withVaList([sizePointer, residentPointer]) { vfscanf(file, "%d %d", $0) }
        }
    }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    #else
    return 0
    #endif
}

/// Counts to a target and wakes one waiter when it gets there.
final class Countdown: Sendable {
    private let remaining: Atomic<Int>
    private let done = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let finished = Atomic<Bool>(false)

    init(_ count: Int) { remaining = Atomic(count) }

    func tick(_ n: Int = 1) {
        if remaining.subtract(n, ordering: .relaxed).newValue == 0 {
            finished.store(true, ordering: .sequentiallyConsistent)
            done.withLock { $0 }?.resume()
        }
    }

    /// Takes one from the count; `false` once it is used up.
    func take() -> Bool { remaining.subtract(1, ordering: .relaxed).newValue > 0 }

    func wait() async {
        await withCheckedContinuation { continuation in
            let already = done.withLock { state -> Bool in
                if finished.load(ordering: .sequentiallyConsistent) { return true }
                state = continuation
                return false
            }
            if already { continuation.resume() }
        }
    }
}

/// Runs `body` against a started run, then shuts the run down.
func withRun(_ blueprint: Blueprint, _ body: (Run) async throws -> Void) async throws {
    let run = try Run(blueprint, configuration: configuration)
    let task = Task { try await run.run() }
    try await body(run)
    run.shutdown()
    try await task.value
}

// MARK: Agents

struct Sink: HandlerAgent {
    typealias Message = Int
    let countdown: Countdown
    func handle(_ message: Int, state: inout Stateless, context: AgentContext<Self>) async throws {
        countdown.tick()
    }
}

struct Stage: HandlerAgent {
    typealias Message = Int
    typealias Resources = Address<Int>
    let next: String
    func setUp(context: AgentContext<Self>) async throws -> Address<Int> {
        try context.address(of: next)
    }
    func handle(_ message: Int, state: inout Stateless, context: AgentContext<Self>) async throws {
        try await context.resources.send(message &+ 1)
    }
}

struct Producer: Agent {
    typealias Message = Int
    let target: String
    let count: Int
    let batched: Bool
    func run(state: inout Stateless, context: AgentContext<Self>) async throws {
        let target = try context.address(of: self.target, as: Int.self)
        producerStarted.withLock { $0 = .now }
        if batched {
            var next = 0
            while next < count {
                let end = min(count, next + 256)
                try await target.send(contentsOf: next..<end)
                next = end
            }
        } else {
            for n in 0..<count { try await target.send(n) }
        }
        for await _ in context.messages {}
    }
}

struct IdleAgent: HandlerAgent {
    typealias Message = Int
    let started: Countdown
    func setUp(context: AgentContext<Self>) async throws {
        started.tick()
    }

    func handle(_ message: Int, state: inout Stateless, context: AgentContext<Self>) async throws {}
}

/// Crashes at every start until it has crashed `restarts` times, then idles.
struct Crasher: Agent {
    typealias Message = Int
    struct Crash: Error {}
    let restarts: Countdown
    let remaining: Countdown
    init(restarts: Int) {
        self.restarts = Countdown(restarts)
        self.remaining = Countdown(restarts + 1)
    }
    func run(state: inout Stateless, context: AgentContext<Self>) async throws {
        if remaining.take() {
            restarts.tick()
            throw Crash()
        }
        for await _ in context.messages {}
    }
}

/// Crash → next incarnation handling the redelivered message, timed.
final class LatencyLog: Sendable {
    let samples = Mutex<[Duration]>([])
    let crashedAt = Mutex<ContinuousClock.Instant?>(nil)
}

struct LatencyProbe: HandlerAgent {
    enum Message: Codable, Sendable { case crashOnce }
    struct Crash: Error {}
    let log = LatencyLog()
    let next: Countdown
    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        if context.deliveryAttempt == 1 {
            log.crashedAt.withLock { $0 = .now }
            throw Crash()
        }
        let now = ContinuousClock.now
        if let crashed = log.crashedAt.withLock({ $0 }) { log.samples.withLock { $0.append(crashed.duration(to: now)) } }
        next.tick()
    }
}

// MARK: Benchmarks

func messaging(_ name: String, count: Int, batched: Bool, stages: Int) async throws {
    let done = Countdown(count)
    let blueprint = Blueprint("bench") {
        Child("sink", Sink(countdown: done))
        for stage in (1..<stages).reversed() {
            Child("stage-\(stage)", Stage(next: stage == stages - 1 ? "sink" : "stage-\(stage + 1)"))
        }
        Child("producer", Producer(target: stages > 1 ? "stage-1" : "sink", count: count, batched: batched))
    }
    // Timed as the peer's benchmark is: from the producer's start, with the receivers started, until the last
    // message is handled; the run's start and shutdown are not part of the figure.
    var elapsed = 0.0
    try await withRun(blueprint) { _ in
        await done.wait()
        elapsed = seconds(producerStarted.withLock { $0 ?? .now }.duration(to: .now))
    }
    report(name, Double(count) / elapsed, "msgs/s")
}

/// When the messaging benchmarks' producer started sending.
let producerStarted = Mutex<ContinuousClock.Instant?>(nil)

func spawn(count: Int) async throws {
    let started = Countdown(count)
    let blueprint = Blueprint("spawn") {
        for index in 0..<count { Child("idle-\(index)", IdleAgent(started: started)) }
    }
    trimHeap()
    let before = residentBytes()
    let run = try Run(blueprint, configuration: configuration)
    let start = ContinuousClock.now
    let task = Task { try await run.run() }
    await started.wait()
    let elapsed = seconds(start.duration(to: .now))
    let peak = residentBytes()
    // Wait until every agent has passivated (given up its task), then measure what idle agents hold.
    while await run.supervisor.children().contains(where: { !$0.isPassivated }) {
        try await Task.sleep(for: .milliseconds(10))
    }
    trimHeap()
    let idle = residentBytes()
    report("spawn_rate", Double(count) / elapsed, "agents/s")
    report("spawn_memory_per_idle_agent", Double(idle - before) / Double(count), "bytes")
    report("spawn_peak_memory_per_agent", Double(peak - before) / Double(count), "bytes")
    run.shutdown()
    try await task.value
}

func restartLatency(samples count: Int) async throws {
    let probe = LatencyProbe(next: Countdown(count))
    let blueprint = Blueprint(
        "latency",
        intensity: RestartIntensity(maxRestarts: Int.max / 2, within: .seconds(1)),
        backoff: .none
    ) {
        Child("probe", probe, options: AgentOptions(maxDeliveryFailures: 1_000))
    }
    try await withRun(blueprint) { run in
        for _ in 0..<count { try await run.send(LatencyProbe.Message.crashOnce, to: "probe") }
        await probe.next.wait()
    }
    let sorted = probe.log.samples.withLock { $0 }.sorted()
    func percentile(_ p: Double) -> Double { seconds(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) * 1e6 }
    report("restart_latency_p50", percentile(0.50), "us")
    report("restart_latency_p99", percentile(0.99), "us")
}

func restartThroughput(restarts count: Int) async throws {
    let crasher = Crasher(restarts: count)
    let blueprint = Blueprint(
        "crashloop",
        intensity: RestartIntensity(maxRestarts: Int.max / 2, within: .seconds(1)),
        backoff: .none
    ) {
        Child("crasher", crasher)
    }
    let start = ContinuousClock.now
    try await withRun(blueprint) { _ in await crasher.restarts.wait() }
    report("restart_throughput", Double(count) / seconds(start.duration(to: .now)), "restarts/s")
}

let benchmarks: [(String, () async throws -> Void)] = [
    ("messages_1to1", { try await messaging("messages_1to1", count: 1_000_000, batched: false, stages: 1) }),
    ("messages_1to1_batched", { try await messaging("messages_1to1_batched", count: 1_000_000, batched: true, stages: 1) }),
    ("messages_pipeline4", { try await messaging("messages_pipeline4", count: 1_000_000, batched: false, stages: 4) }),
    ("messages_pipeline4_batched", { try await messaging("messages_pipeline4_batched", count: 1_000_000, batched: true, stages: 4) }),
    ("restart_latency", { try await restartLatency(samples: 20_000) }),
    ("restart_throughput", { try await restartThroughput(restarts: 1_000_000) }),
    ("spawn", { try await spawn(count: 100_000) }),
    ("sqlite_checkpoints_1agent", {
        try await checkpointThroughput(agents: 1, perAgent: 20_000, sync: false)
        try await checkpointThroughput(agents: 1, perAgent: 2_000, sync: true)
    }),
    ("sqlite_checkpoints_1000agents", {
        try await checkpointThroughput(agents: 1_000, perAgent: 500, sync: false)
        try await checkpointThroughput(agents: 1_000, perAgent: 200, sync: true)
        try await handlerCheckpointThroughput(agents: 1_000, perAgent: 200)
    }),
    ("sqlite_durable_pipeline", { try await durablePipeline(count: 500_000) }),
    ("sqlite_claim_100000agents", { try await claimThroughput(agents: 100_000) }),
    ("sqlite_claim_100000agents_store", { try await storeClaimThroughput(agents: 100_000) }),
    ("http", {
        try await httpThroughput()
        try await httpCancelLatency(samples: 50)
    }),
    ("cli_listings", { try await cliListings() }),
    ("cli_control", { try await cliControl(agents: 1_000) }),
    ("idle_fleet", { try await idleFleet(agents: 10_000) }),
    ("postgres", { try await PostgresBench.run() }),
    ("sqlite_resume", {
        try await resumeAfterKill(agents: 1, label: "1agent")
        try await resumeAfterKill(agents: 10_000, label: "10000agents")
    }),
]

for (name, benchmark) in benchmarks where filter == nil || name.hasPrefix(filter!) {
    try await benchmark()
}
