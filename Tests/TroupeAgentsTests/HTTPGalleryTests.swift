import Synchronization
import Testing
import Troupe
import TroupeAgents
import TroupeHTTP
import TroupeHTTPTesting
import TroupeTestKit

/// A run whose agents reach `http` as `context.http`.
func httpConfiguration(_ http: HTTPClient, store: any CheckpointStore = InMemoryCheckpointStore()) -> Run.Configuration {
    Run.Configuration(store: store, logger: quiet, services: [http])
}

/// The gallery's results are waited for up to 90 s: at the loaded start of the whole suite, 100 fetches from a
/// loopback server took more than 30 s once in CI (an idle machine takes well under one).
@Suite(.timeLimit(.minutes(3)))
struct HTTPGalleryTests {
    @Test func fetchManyGathersEveryResultAndEveryError() async throws {
        let server = try OfflineServices.catalog()
        defer { server.close() }
        let http = HTTPClient(configuration: .init(retry: RetryPolicy(attempts: 2, initialDelay: .milliseconds(1))))
        defer { http.shutdown() }
        let done = Recorder<FetchMany.State>()
        let urls = (1...100).map { server.url("/item/\($0)") }
        let run = try Run(
            Blueprint("fetch") { Child("fetcher", FetchMany(urls: urls, maxConcurrency: 8) { done.record($0) }, restart: .transient) },
            configuration: httpConfiguration(http)
        )
        let report = try await withRunning(run) { try await done.wait(forCount: 1, timeout: .seconds(90))[0] }
        // Every 10th item is broken (500), every other 7th missing (404): all 100 accounted for.
        #expect(report.results.count + report.errors.count == 100)
        #expect(report.errors.count == 10 + 14 - 1)
        #expect(report.errors[server.url("/item/10")] == "status 500")
        #expect(report.errors[server.url("/item/7")] == "status 404")
        #expect(report.results[server.url("/item/3")] == 3)
    }

    @Test func buildingABlueprintStartsNoServerAndTheFirstUseDoes() async throws {
        let catalog = LazyLoopbackServer { try OfflineServices.catalog() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let done = Recorder<FetchMany.State>()
        let blueprint = Blueprint("fetch") {
            Child("fetcher", FetchMany(base: .offline(catalog), paths: ["/item/3", "/item/10"]) { done.record($0) }, restart: .transient)
        }
        let sensors = Demo.sensors()
        let demo = Demo.blueprint(http: http, sensors: sensors)
        #expect(!catalog.isStarted && !sensors.isStarted, "building a blueprint started a server")
        let demoRun = try Run(demo, configuration: httpConfiguration(http))
        try await withRunning(demoRun) {
            // The monitor's first poll starts the sensors' server.
            let deadline = ContinuousClock.now + .seconds(30)
            while !sensors.isStarted, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(sensors.isStarted, "the demo's monitor never started its sensors")
        let run = try Run(blueprint, configuration: httpConfiguration(http))
        let report = try await withRunning(run) { try await done.wait(forCount: 1, timeout: .seconds(90))[0] }
        #expect(catalog.isStarted)
        #expect(report.results[try catalog.url("/item/3")] == 3)
        #expect(report.errors[try catalog.url("/item/10")] == "status 500")
    }

    @Test func theMarketMonitorContinuesWhereItWasAfterARestart() async throws {
        let server = try OfflineServices.market()
        defer { server.close() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let store = InMemoryCheckpointStore()
        let symbols = ["ACME", "GLOBEX"]
        func monitor(_ polls: Int, _ seen: Recorder<MarketMonitor.State>) -> Blueprint {
            Blueprint("market", durability: .durable) {
                Child(
                    "monitor",
                    MarketMonitor(endpoint: ServiceURL(server.url("/quotes")), symbols: symbols, every: .milliseconds(1), threshold: 0.04, maxPolls: polls) {
                        seen.record($0)
                    },
                    restart: .transient
                )
            }
        }
        let first = Recorder<MarketMonitor.State>()
        let run = try Run(monitor(3, first), id: "run-market", configuration: httpConfiguration(http, store: store))
        let probe = AgentProbe(run)
        _ = try await withRunning(run) { try await probe.wait(for: "monitor", .exited) }
        #expect(first.values.map(\.polls) == [1, 2, 3])
        // The same run, resumed with more polls allowed: the monitor had ended (it is transient), so it stays
        // ended until an operator restarts it; then it polls 4 and 5, not 1 and 2.
        let second = Recorder<MarketMonitor.State>()
        let resumed = try Run(monitor(5, second), id: "run-market", configuration: httpConfiguration(http, store: store))
        let resumedProbe = AgentProbe(resumed)
        let states = try await withRunning(resumed) {
            _ = try await resumedProbe.wait(for: "monitor", .exited)
            try await resumed.supervisor.restartChild("monitor")
            return try await second.wait(forCount: 2)
        }
        #expect(states.map(\.polls) == [4, 5])
        let expected = OfflineServices.price(poll: 5, index: 0)
        #expect(states.last?.prices["ACME"] == expected)
        // Moves are computed against the previous poll, across the restart.
        let before = OfflineServices.price(poll: 4, index: 0)
        let change = (expected - before) / before
        #expect((abs(change) >= 0.04) == (states.last?.moves.contains { $0.hasPrefix("ACME") } ?? false))
    }

    @Test func llmChatStreamsTokensAndStopsAtItsBudget() async throws {
        let server = try OfflineServices.chat(answer: "one two three four five six seven eight")
        defer { server.close() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let tokens = Recorder<String>()
        let done = Recorder<LLMChat.State>()
        let chat = LLMChat(
            endpoint: .init(baseURL: ServiceURL(server.url("/v1")), model: "stub", apiKey: "sk-secret"),
            prompts: ["first?", "second?"],
            tokenBudget: 11,
            onToken: { tokens.record($0) },
            onDone: { done.record($0) }
        )
        let store = InMemoryCheckpointStore()
        let run = try Run(
            Blueprint("chat", durability: .checkpointed) { Child("chat", chat, restart: .transient) },
            id: "run-chat",
            configuration: httpConfiguration(http, store: store)
        )
        let state = try await withRunning(run) { try await done.wait(forCount: 1, timeout: .seconds(90))[0] }
        #expect(state.answers.first == "one two three four five six seven eight")
        #expect(state.tokens == 11)
        #expect(state.budgetExhausted)
        #expect(state.answers.last == "one two three")
        #expect(tokens.values.count == 11)
        // The key is in no checkpoint.
        let saved = store.checkpoints(of: AgentID(run: "run-chat", name: "chat")).map { String(decoding: $0.state, as: UTF8.self) }
        #expect(!saved.isEmpty)
        #expect(!saved.contains { $0.contains("sk-secret") })
    }

    @Test func batchStreamDeliversEveryItemThroughBoundedMailboxes() async throws {
        let totals = Recorder<BatchSink.State>()
        let run = try Run(
            Blueprint("batch-stream", strategy: .restForOne) {
                Child("sink", BatchSink { totals.record($0) }, options: AgentOptions(mailboxCapacity: 2))
                Child("transformer", BatchTransformer(to: "sink"), options: AgentOptions(mailboxCapacity: 2))
                Child("producer", BatchProducer(count: 50, size: 20, to: "transformer"), restart: .transient)
            },
            configuration: Run.Configuration(logger: quiet)
        )
        let last = try await withRunning(run) { try await totals.wait(timeout: .seconds(90)) { $0.last?.batches == 50 }.last! }
        #expect(last.items == 1000)
        #expect(last.sum == 2 * (999 * 1000 / 2))
    }
}
