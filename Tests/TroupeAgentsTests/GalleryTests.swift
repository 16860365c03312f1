import Dispatch
import FoundationEssentials
import Logging
import Testing
import Troupe
import TroupeAgents
import TroupeHTTP
import TroupeTestKit

let quiet: Logger = {
    var logger = Logger(label: "troupe.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

func configuration(clock: any Clock<Duration> = ContinuousClock()) -> Run.Configuration {
    Run.Configuration(clock: clock, logger: quiet)
}


@Suite(.timeLimit(.minutes(4)))
struct GalleryTests {
    @Test func aCruncherWithARequestLimitFinishesAfterItAndReadsOlderCheckpoints() async throws {
        let run = try Run(Blueprint("crunch") {
            Child("cruncher", Cruncher(requests: 2) { $0 + 1 }, restart: .transient)
        }, configuration: configuration())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            let first = try await run.call("cruncher", timeout: .seconds(60)) { Cruncher.Message.crunch(1, $0) }
            let second = try await run.call("cruncher", timeout: .seconds(60)) { Cruncher.Message.crunch(2, $0) }
            #expect(first == 2 && second == 3)
            try await probe.wait(for: "cruncher", .exited)
        }
        // A checkpoint from before the count (the cruncher kept no state) reads as none answered.
        let older = try JSONDecoder().decode(Cruncher.State.self, from: Data("{}".utf8))
        #expect(older.answered == 0)
    }

    @Test func gatherCollectsEveryResultAndEveryError() async throws {
        let gatherer = Gatherer(maxConcurrency: 3) { input in
            guard let n = Int(input), n % 4 != 0 else { throw Failure(input: input) }
            return "\(n * 10)"
        }
        let run = try Run(Blueprint("gather") { Child("gatherer", gatherer) }, configuration: configuration())
        let report = try await withRunning(run) {
            try await run.call("gatherer", timeout: .seconds(60)) { Gatherer.Message.gather((1...12).map(String.init), $0) }
        }
        #expect(report.results.count == 9)
        #expect(report.results["5"] == "50")
        #expect(report.errors.keys.sorted() == ["12", "4", "8"])
        #expect(report.errors["8"] == "no luck with 8")
    }

    struct Failure: Error, CustomStringConvertible {
        var input: String
        var description: String { "no luck with \(input)" }
    }

    @Test func gatherNeverRunsMoreThanItsLimitAtOnce() async throws {
        let tracker = ConcurrencyTracker()
        let gatherer = Gatherer(maxConcurrency: 3) { input in
            tracker.enter()
            defer { tracker.leave() }
            await Task.yield()
            return input
        }
        let run = try Run(Blueprint("gather") { Child("gatherer", gatherer) }, configuration: configuration())
        let report = try await withRunning(run) {
            try await run.call("gatherer", timeout: .seconds(60)) { Gatherer.Message.gather((1...50).map(String.init), $0) }
        }
        #expect(report.results.count == 50)
        #expect(tracker.peak <= 3)
    }

    @Test func monitorPollsEveryIntervalAndPublishesAlerts() async throws {
        let clock = ManualClock()
        let polls = Recorder<Int>()
        let alerts = Recorder<String>()
        let monitor = Monitor(every: .seconds(5)) {
            let n = polls.values.count + 1
            polls.record(n)
            return [Monitor.Reading(name: "a", value: Double(n * 40)), Monitor.Reading(name: "b", value: 10)]
        } check: { reading in
            reading.value > 90 ? "\(reading.name) high" : nil
        }
        let run = try Run(Blueprint("monitor") {
            Child("monitor", monitor)
            Child("listener", AlertListener(seen: alerts))
        }, configuration: configuration(clock: clock))
        try await withRunning(run) {
            for poll in 1...3 {
                await clock.waitForSleepers(1)
                #expect(polls.values.count == poll - 1, "no poll before the interval has passed")
                clock.advance(by: .seconds(5))
                try await polls.wait(forCount: poll)
            }
            try await alerts.wait(forCount: 1)
            await clock.waitForSleepers(1)
        }
        #expect(alerts.values == ["a high"])  // 40, 80, 120: only the third poll is high
    }

    @Test func monitorStopsPromptlyWhenCancelledMidSleep() async throws {
        let clock = ManualClock()
        let monitor = Monitor(every: .seconds(3600), poll: { [] }, check: { _ in nil })
        let run = try Run(Blueprint("monitor") {
            Child("monitor", monitor, shutdown: .init(graceful: .zero, cancellation: .seconds(1)))
        }, configuration: configuration(clock: clock))
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        await clock.waitForSleepers(1)
        task.cancel()
        try await task.value  // returns without anyone advancing the clock by an hour
        #expect(probe.events(of: "monitor").contains { if case .exited(.cancelled) = $0.kind { true } else { false } })
    }

    @Test func batchesStreamThroughWithBackpressureAndSurviveACrash() async throws {
        let totals = Recorder<BatchSink.State>()
        let run = try Run(Blueprint("stream", backoff: .none) {
            Child("sink", BatchSink { totals.record($0) }, options: AgentOptions(mailboxCapacity: 2))
            Child("transformer", BatchTransformer(to: "sink", crashOnceOnBatch: 4), options: AgentOptions(mailboxCapacity: 2))
            Child("producer", BatchProducer(count: 20, size: 10, to: "transformer"))
        }, configuration: configuration())
        let probe = AgentProbe(run)
        let final = try await withRunning(run) {
            try await totals.wait(timeout: .seconds(90)) { $0.last?.batches == 20 }.last
        }
        #expect(final?.items == 200)
        #expect(final?.sum == 2 * (0..<200).reduce(0, +), "every item exactly once, the crashed batch included")
        #expect(probe.events(of: "transformer").contains { if case .restarting = $0.kind { true } else { false } })
    }

    @Test(arguments: ["finish", "fail", "cancel", "shutdown"])
    func theJournalIsClosedOnEveryExitPath(path: String) async throws {
        let opened = Recorder<JournalFile>()
        let journal = Journal {
            let file = JournalFile()
            opened.record(file)
            return file
        }
        let restart: ChildSpec.Restart = path == "fail" ? .transient : .temporary
        let shutdown: ChildSpec.Shutdown = path == "cancel" ? .init(graceful: .zero, cancellation: .seconds(10)) : .default
        let run = try Run(Blueprint("journal", intensity: .init(maxRestarts: 0, within: .seconds(1))) {
            Child("journal", journal, restart: restart, shutdown: shutdown)
        }, configuration: configuration())
        let probe = AgentProbe(run)
        let task = Task { try await run.run() }
        let file = try #require(await opened.wait(forCount: 1).first)
        try await run.send(Journal.Message.write("hello"), to: "journal")
        switch path {
        case "finish": try await run.send(Journal.Message.finish, to: "journal")
        case "fail": try await run.send(Journal.Message.fail, to: "journal")
        case "cancel": task.cancel()
        default: run.shutdown()
        }
        try await probe.wait(for: "journal", .exited)
        run.shutdown()
        _ = try? await task.value
        #expect(await file.lines == ["hello"])
        #expect(await !file.isOpen)
        let expected = ["finish": "normal", "fail": "failed: Failure()", "cancel": "cancelled", "shutdown": "stopped"]
        #expect(await file.closedBecause == expected[path])
    }

    @Test func offloadedCrunchingDoesNotStarveOtherAgents() async throws {
        let gate = DispatchSemaphore(value: 0)
        // Four crunchers, more than this machine's cores, each blocking its thread until released.
        let cruncher = Cruncher { n in
            gate.wait()
            return n + 1
        }
        let run = try Run(Blueprint("crunch") {
            Pool("cruncher", count: 4) { _ in cruncher }
            Child("gatherer", Gatherer { $0 })
        }, configuration: configuration())
        try await withRunning(run) {
            let crunches = (0..<4).map { n in
                Task { try await run.call("cruncher-\(n)", timeout: .seconds(60)) { Cruncher.Message.crunch(n, $0) } }
            }
            // With every cruncher busy, another agent still answers.
            let report = try await run.call("gatherer", timeout: .seconds(60)) { Gatherer.Message.gather(["ping"], $0) }
            #expect(report.results == ["ping": "ping"])
            for _ in 0..<4 { gate.signal() }
            var results: [Int] = []
            for crunch in crunches { results.append(try await crunch.value) }
            #expect(results == [1, 2, 3, 4])
        }
    }

    @Test func primesAreCounted() {
        #expect(Cruncher.countPrimes(below: 100) == 25)
        #expect(Cruncher.countPrimes(below: 2) == 0)
    }

    @Test func theDemoTreeDeliversEveryItemDespiteTheInjectedCrash() async throws {
        let totals = Recorder<BatchSink.State>()
        let http = HTTPClient()
        defer { http.shutdown() }
        var configuration = configuration()
        configuration.services = [http]
        let run = try Run(Demo.blueprint(http: http) { totals.record($0) }, configuration: configuration)
        let probe = AgentProbe(run)
        let final = try await withRunning(run) {
            try await totals.wait(timeout: .seconds(90)) { $0.last?.batches == Demo.batches }.last
        }
        #expect(final?.sum == Demo.expectedSum)
        #expect(probe.events(of: "transformer").contains { if case .exited(.failed) = $0.kind { true } else { false } })
    }
}

/// Records subscribed alerts.
struct AlertListener: HandlerAgent {
    enum Message: Codable, Sendable { case alert(String) }
    let seen: Recorder<String>
    func setUp(context: AgentContext<Self>) async throws {
        context.subscribe(to: Monitor.alerts) { .alert($0) }
    }
    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        if case .alert(let text) = message { seen.record(text) }
    }
}

import Synchronization

final class ConcurrencyTracker: Sendable {
    private let state = Mutex((current: 0, peak: 0))
    func enter() { state.withLock { $0.current += 1; $0.peak = max($0.peak, $0.current) } }
    func leave() { state.withLock { $0.current -= 1 } }
    var peak: Int { state.withLock { $0.peak } }
}
