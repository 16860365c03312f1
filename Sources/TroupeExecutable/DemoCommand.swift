import ArgumentParser
import FoundationEssentials
import Logging
import ServiceLifecycle
import UnixSignals
import Synchronization
import Troupe
import TroupeAgents
import TroupeHTTP
import TroupeCLI

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the demo tree, with an injected crash, and show the supervisor restarting it.",
        discussion: """
            The demo runs a monitor, a three-stage batch pipeline, a gatherer, a cruncher and a driver under one \
            supervisor. The pipeline's transformer crashes once on purpose; its supervisor restarts it, and the \
            batch it was handling is delivered again, so every item still arrives exactly once. Each agent ends \
            once its share is done, and the run completes. Checkpoints and events go to the database (see \
            --database). It works offline and takes about a second.

            Examples:
              troupe demo
              troupe demo --json | jq .
            """
    )

    @OptionGroup var global: GlobalOptions

    private var json: Bool { global.json }

    func run() async throws {
        var logger = Logger(label: "troupe.demo")
        logger.logLevel = global.logLevel ?? .error
        let pipeline = Latch<BatchSink.State>()
        let answers = Latch<(Gatherer.Report, Int)>()
        let store: any OperatorStore
        do {
            store = try await global.openStore(mustExist: false)
        } catch {
            throw TroupeCommand.fail(error)
        }
        let http = HTTPClient()
        let demo = try Run(
            Demo.blueprint(
                http: http,
                onBatch: { totals in if totals.batches == Demo.batches { pipeline.open(with: totals) } },
                onAnswers: { gathered, primes in answers.open(with: (gathered, primes)) }
            ),
            configuration: Run.Configuration(store: store, logger: logger, durability: .checkpointed, services: [http])
        )
        let printer = EventPrinter(json: json)
        let restarts = Mutex<[String]>([])
        let polls = Mutex(0)
        let monitored = Latch<Int>()
        demo.addEventSink { event in
            if case .restarting = event.kind { restarts.withLock { $0.append(event.name) } }
            if case .checkpointed = event.kind, event.name == "monitor" {
                let count = polls.withLock { count in
                    count += 1
                    return count
                }
                if count == 3 { monitored.open(with: count) }
            }
            printer.print(event)
        }
        if !json { Swift.print("troupe demo: run \(demo.id), blueprint 'demo', database \(global.databasePath)") }

        // Under a ServiceGroup, Ctrl-C (SIGINT) or SIGTERM shuts the tree down gracefully.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: http), .init(service: demo)],  // shut down in reverse: the tree first
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        let body = Task { () throws -> Summary in
            guard let totals = await pipeline.wait(), let (gathered, primes) = await answers.wait(),
                await monitored.wait() != nil
            else { throw CancellationError() }
            return Summary(totals: totals, gathered: gathered, primes: primes)
        }
        let running = Task {
            defer { body.cancel() }  // a signal ended the run early: stop waiting for the demo to finish
            try await group.run()
        }
        let outcome = await body.result
        // Every agent ends once its share is done: the run completes on its own (a slow machine gets a minute).
        if case .success = outcome {
            let deadline = ContinuousClock.now + .seconds(60)
            while ContinuousClock.now < deadline {
                if ChildInfo.allEnded(await demo.supervisor.children()) {
                    demo.complete()
                    break
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        await group.triggerGracefulShutdown()
        let ended = await running.result
        // The monitor's own count, from its last checkpoint (its final checkpoint repeats its last poll's state).
        let polled = await monitorPolls(store: store, run: demo.id) ?? polls.withLock { $0 }
        await store.close()
        if case .failure(let error) = ended { throw TroupeCommand.fail(error) }
        if case .failure(let error) = outcome, error is CancellationError {
            printError("troupe demo: interrupted; the tree was shut down gracefully")
            throw ExitCode(130)
        }
        let summary: Summary
        switch outcome {
        case .success(let value): summary = value
        case .failure(let error): throw TroupeCommand.fail(error)
        }
        let exact = summary.totals.sum == Demo.expectedSum && summary.totals.items == Demo.batches * Demo.batchSize
        printer.summary(
            summary,
            restarts: restarts.withLock { $0 },
            polls: polled,
            exact: exact
        )
        if !exact { throw ExitCode.failure }
    }

    private func monitorPolls(store: any OperatorStore, run: RunID) async -> Int? {
        guard let last = try? await store.checkpoints(of: AgentID(run: run, name: "monitor")).last else { return nil }
        return (try? JSONDecoder().decode(Monitor.State.self, from: Data(last.state)))?.polls
    }

    struct Summary {
        var totals: BatchSink.State
        var gathered: Gatherer.Report
        var primes: Int
    }
}

/// Prints events as they happen: aligned text for people, JSON lines for scripts.
final class EventPrinter: Sendable {
    private let json: Bool
    private let start = ContinuousClock.now
    private let lock = Mutex(())

    init(json: Bool) { self.json = json }

    func print(_ event: Event) {
        switch event.kind {
        case .checkpointed: return
        case .exited(.failed), .exited(.normal): break  // crashed; finished its share of the work
        case .exited: return  // stopped or cancelled: the supervisor's `stopped` / `killed` says it
        default: break
        }
        let record = EventRecord(event)
        let (verb, detail) = (record.event, record.detail)
        let elapsed = start.duration(to: .now)
        lock.withLock { _ in
            if json {
                Swift.print(jsonText(EventLine(record)))
            } else {
                let who = "\(event.name)#\(event.incarnation)"
                Swift.print("  +\(shortDuration(elapsed))  \(who.padded(to: 16)) \(verb.padded(to: 11)) \(detail)".trimmingTrailingSpaces())
            }
            flushOutput()
        }
    }

    func summary(_ summary: DemoCommand.Summary, restarts: [String], polls: Int, exact: Bool) {
        let errors = summary.gathered.errors.sorted { $0.key.count == $1.key.count ? $0.key < $1.key : $0.key.count < $1.key.count }
        if json {
            Swift.print(jsonText(SummaryRecord(
                batches: summary.totals.batches,
                items: summary.totals.items,
                sum: summary.totals.sum,
                expectedSum: Demo.expectedSum,
                exactlyOnce: exact,
                gatherResults: summary.gathered.results.count,
                gatherErrors: errors.map(\.value),
                primes: summary.primes,
                restarts: restarts,
                monitorPolls: polls
            )))
            return
        }
        Swift.print("")
        Swift.print("summary")
        Swift.print("  pipeline   \(summary.totals.batches) batches, \(summary.totals.items) items, sum \(summary.totals.sum) (expected \(Demo.expectedSum)): \(exact ? "every item exactly once" : "MISMATCH")")
        Swift.print("  gatherer   \(summary.gathered.results.count) results, \(summary.gathered.errors.count) errors (\(errors.map(\.value).joined(separator: "; ")))")
        Swift.print("  cruncher   \(summary.primes) primes below 200000, counted off the agents' threads")
        Swift.print("  monitor    \(polls) polls")
        Swift.print("  restarts   \(restarts.count)\(restarts.isEmpty ? "" : ": " + restarts.joined(separator: ", "))")
    }

    /// The demo's outcome, as the last JSON line.
    struct SummaryRecord: Encodable {
        var type = "summary"
        var batches: Int
        var items: Int
        var sum: Int
        var expectedSum: Int
        var exactlyOnce: Bool
        var gatherResults: Int
        var gatherErrors: [String]
        var primes: Int
        var restarts: [String]
        var monitorPolls: Int
    }
}
