public import Troupe
import FoundationEssentials
import Synchronization
public import TroupeHTTP
import TroupeHTTPTesting

/// The demo that `troupe demo` runs: one small tree of the gallery's agents, with a fault injected into the
/// pipeline so that the supervisor's restart shows.
///
/// ```
/// demo (oneForOne)
/// ├── monitor      polls simulated sensors over HTTP every 100 ms, publishes alerts
/// ├── pipeline (restForOne)
/// │   ├── sink         reads batches as an AsyncSequence, keeps totals
/// │   ├── transformer  doubles every item; crashes once on batch 3
/// │   └── producer     sends 10 batches of 100 numbers
/// ├── gatherer     fans out 10 jobs (3 of which fail) and gathers all outcomes
/// ├── cruncher     counts primes off the agents' threads
/// └── driver       asks the gatherer and the cruncher for their one job each
/// ```
///
/// Every agent is `transient` and ends once its share is done (the monitor after five polls, the pipeline after
/// its batches, the gatherer and the cruncher after one request, the driver after their answers), so the run
/// completes on its own, under `troupe demo` and `troupe run demo` alike.
public enum Demo {
    /// Batches the producer sends.
    public static let batches = 10
    /// Items per batch.
    public static let batchSize = 100
    /// The batch the transformer crashes on, once.
    public static let faultyBatch = 3

    /// The simulated sensors the monitor polls (`/sensors`), on a loopback server that starts on its first use.
    public static func sensors() -> LazyLoopbackServer {
        let sensor = Sensor()
        return LazyLoopbackServer {
            try LoopbackServer { _ in
                let body = (try? JSONEncoder().encode(sensor.read())).map(Array.init) ?? Array("[]".utf8)
                return .respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
            }
        }
    }

    /// The demo's blueprint. It works offline: the sensors are served by a loopback HTTP server that the monitor's
    /// first poll starts (building the blueprint opens no socket).
    ///
    /// - Parameters:
    ///   - http: The client the monitor polls with.
    ///   - sensors: Where the monitor polls `/sensors`; by default simulated sensors of its own.
    ///   - onBatch: Called by the sink with its totals after every batch.
    ///   - onAnswers: Called by the driver with the gatherer's report and the cruncher's count.
    public static func blueprint(
        http: HTTPClient,
        sensors server: LazyLoopbackServer = sensors(),
        onBatch: @escaping @Sendable (BatchSink.State) -> Void = { _ in },
        onAnswers: @escaping @Sendable (Gatherer.Report, Int) -> Void = { _, _ in }
    ) -> Blueprint {
        let poll: @Sendable () async throws -> [Monitor.Reading] = {
            // The server lives as long as the monitor that polls it.
            try await http.execute(.get(server.url("/sensors"))).decode([Monitor.Reading].self)
        }
        return Blueprint(
            "demo",
            strategy: .oneForOne,
            intensity: RestartIntensity(maxRestarts: 5, within: .seconds(10)),
            backoff: .exponential(initial: .milliseconds(50), maximum: .seconds(2), jitter: 0.1)
        ) {
            Child("monitor", Monitor(every: .milliseconds(100), poll: poll, check: Demo.check, limit: polls), restart: .transient)
            Blueprint("pipeline", strategy: .restForOne) {
                Child(
                    "sink",
                    BatchSink(count: batches, onBatch: onBatch),
                    restart: .transient,
                    options: AgentOptions(mailboxCapacity: 4)
                )
                // A small mailbox holds the producer back, so it is still sending when batch 3 crashes the
                // transformer, and rest-for-one restarts it too (with room for every batch, a fast producer could
                // be done and gone by then).
                Child(
                    "transformer",
                    BatchTransformer(to: "sink", crashOnceOnBatch: faultyBatch, count: batches),
                    restart: .transient,
                    options: AgentOptions(mailboxCapacity: 4)
                )
                Child(
                    "producer",
                    BatchProducer(count: batches, size: batchSize, to: "transformer", stayUp: false),
                    restart: .transient
                )
            }
            Child("gatherer", Gatherer(maxConcurrency: 4, requests: 1, job: Demo.job), restart: .transient)
            Child("cruncher", Cruncher(requests: 1), restart: .transient)
            Child("driver", Driver(onAnswers: onAnswers), restart: .transient)
        }
    }

    /// The monitor's polls before it ends.
    public static let polls = 5
    /// The gatherer's inputs: 1…10, of which 2, 5 and 8 fail on purpose.
    public static let gatherInputs = (1...10).map(String.init)
    /// The cruncher counts the primes below this.
    public static let crunchBelow = 200_000

    /// Asks the gatherer and the cruncher for their job, checkpointing each answer so that a restart does not ask
    /// again, then reports both and ends.
    struct Driver: Agent {
        struct State: AgentState {
            var gathered: Gatherer.Report?
            var primes: Int?
        }

        let onAnswers: @Sendable (Gatherer.Report, Int) -> Void

        func run(state: inout State, context: AgentContext<Self>) async throws {
            if state.gathered == nil {
                state.gathered = try await context.call("gatherer", timeout: .seconds(60)) {
                    Gatherer.Message.gather(Demo.gatherInputs, $0)
                }
                try await context.checkpoint(state)
            }
            if state.primes == nil {
                state.primes = try await context.call("cruncher", timeout: .seconds(120)) {
                    Cruncher.Message.crunch(Demo.crunchBelow, $0)
                }
                try await context.checkpoint(state)
            }
            if let gathered = state.gathered, let primes = state.primes { onAnswers(gathered, primes) }
        }
    }

    /// The sum the sink must reach: every item of every batch, doubled, counted exactly once.
    public static var expectedSum: Int {
        let count = batches * batchSize
        return 2 * (count * (count - 1) / 2)
    }

    /// A demo job: succeeds for most inputs, fails for every third.
    @Sendable static func job(_ input: String) async throws -> String {
        guard let n = Int(input) else { throw DemoError(message: "'\(input)' is not a number") }
        if n % 3 == 2 { throw DemoError(message: "job \(n) failed on purpose") }
        return String(n * n)
    }

    @Sendable static func check(_ reading: Monitor.Reading) async -> String? {
        reading.value > 90 ? "\(reading.name) is high (\(Int(reading.value)))" : nil
    }

    struct DemoError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Simulated sensors: a deterministic sequence of readings.
    final class Sensor: Sendable {
        private let tick = Mutex(0)

        func read() -> [Monitor.Reading] {
            let tick = self.tick.withLock { value in
                value += 1
                return value
            }
            return ["boiler", "pump", "valve"].enumerated().map { index, name in
                Monitor.Reading(name: name, value: Double((tick * 37 + index * 23) % 100))
            }
        }
    }
}
