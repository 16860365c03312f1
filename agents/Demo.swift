public import Troupe
import FoundationEssentials
import Synchronization
public import TroupeHTTP
public import TroupeHTTPTesting

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
/// └── cruncher     counts primes off the agents' threads
/// ```
public enum Demo {
    /// Batches the producer sends.
    public static let batches = 10
    /// Items per batch.
    public static let batchSize = 100
    /// The batch the transformer crashes on, once.
    public static let faultyBatch = 3

    /// The demo's blueprint. It works offline: the sensors are served by a loopback HTTP server it starts.
    ///
    /// - Parameters:
    ///   - http: The client the monitor polls with.
    ///   - onBatch: Called by the sink with its totals after every batch.
    /// - Throws: ``TroupeHTTP/HTTPClientError`` if the loopback server cannot listen.
    public static func blueprint(
        http: HTTPClient,
        onBatch: @escaping @Sendable (BatchSink.State) -> Void = { _ in }
    ) throws -> Blueprint {
        let sensor = Sensor()
        let server = try LoopbackServer { _ in
            let body = (try? JSONEncoder().encode(sensor.read())).map(Array.init) ?? Array("[]".utf8)
            return .respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
        }
        let url = server.url("/sensors")
        let poll: @Sendable () async throws -> [Monitor.Reading] = {
            _ = server  // the server lives as long as the monitor that polls it
            return try await http.execute(.get(url)).decode([Monitor.Reading].self)
        }
        return Blueprint(
            "demo",
            strategy: .oneForOne,
            intensity: RestartIntensity(maxRestarts: 5, within: .seconds(10)),
            backoff: .exponential(initial: .milliseconds(50), maximum: .seconds(2), jitter: 0.1)
        ) {
            Child("monitor", Monitor(every: .milliseconds(100), poll: poll, check: Demo.check))
            Blueprint("pipeline", strategy: .restForOne) {
                Child("sink", BatchSink(onBatch: onBatch), options: AgentOptions(mailboxCapacity: 4))
                Child("transformer", BatchTransformer(to: "sink", crashOnceOnBatch: faultyBatch))
                Child("producer", BatchProducer(count: batches, size: batchSize, to: "transformer"))
            }
            Child("gatherer", Gatherer(maxConcurrency: 4, job: Demo.job))
            Child("cruncher", Cruncher())
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
