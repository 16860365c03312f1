import Troupe
import TroupeTestKit
import Logging
import Dispatch

/// Agents shared by the engine's tests.

/// Adds numbers; crashes on negative ones; answers `total` calls.
struct Counter: HandlerAgent {
    struct State: AgentState { var total = 0 }
    enum Message: Codable, Sendable {
        case add(Int)
        case total(Reply<Int>)
    }
    struct Negative: Error {}

    var seen: Recorder<Int>? = nil

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .add(let n):
            if n < 0 { throw Negative() }
            state.total += n
            seen?.record(n)
        case .total(let reply):
            reply(state.total)
        }
    }
}

/// Records every message it handles, with its incarnation; crashes when told to.
struct Echo: HandlerAgent {
    enum Message: Codable, Sendable {
        case note(String)
        case crash
        case crashOnce
    }
    struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

    let seen: Recorder<String>

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        switch message {
        case .note(let text): seen.record(text)
        case .crash: throw Boom()
        case .crashOnce: if context.deliveryAttempt == 1 { throw Boom() } else { seen.record("survived") }
        }
    }
}

/// A loop agent that runs until stopped (or exits/fails when told to at start).
struct Idler: Agent {
    enum Mode: Sendable { case idle, returnAtOnce, failAtOnce, ignoreCancellation(Gate) }
    struct Failed: Error {}
    var mode: Mode = .idle

    func run(state: inout Stateless, context: AgentContext<Self>) async throws {
        switch mode {
        case .idle:
            for await _ in context.messages {}
        case .returnAtOnce:
            return
        case .failAtOnce:
            throw Failed()
        case .ignoreCancellation(let gate):
            // Waits on a thread outside the pool until the test lets it go: deaf to stop requests and cancellation.
            try await context.offload { gate.wait() }
        }
    }
}

/// A latch that blocks a thread until released.
final class Gate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    func wait() { semaphore.wait() }
    func release() { semaphore.signal() }
}

/// A quiet logger for tests.
let quiet: Logger = {
    var logger = Logger(label: "troupe.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

extension Run.Configuration {
    static func test(clock: any Clock<Duration> = ContinuousClock(), store: any CheckpointStore = InMemoryCheckpointStore()) -> Run.Configuration {
        Run.Configuration(store: store, clock: clock, random: SeededRandom(seed: 42), logger: quiet)
    }
}

/// A deterministic generator for jitter.
struct SeededRandom: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

