// A durable counting pipeline for the crash test: `source` emits 1…N to `relay`, which forwards each number to
// `counter`, which adds it up and checks that each number comes exactly once and in order. The crash test kills
// this process with SIGKILL at random moments, starts it again on the same database (which resumes the run), and
// checks the counter's final state.
//
//     troupe-crash-pipeline DATABASE RUN-ID COUNT
//
// Prints `complete` and exits 0 once the counter has seen COUNT numbers.
import Foundation
import Troupe
import TroupeSQLite

struct Source: Agent {
    struct State: Codable, Sendable { var next = 1 }
    typealias Message = Never
    let count: Int

    func initialState() -> State { State() }

    func run(state: inout State, context: AgentContext<Self>) async throws {
        while state.next <= count, !context.isStopping {
            // Each checkpoint commits the new position together with the numbers sent since the last one.
            for _ in 0..<25 where state.next <= count {
                try await context.send(Relay.Message.value(state.next), to: "relay")
                state.next += 1
            }
            try await context.checkpoint(state)
        }
    }
}

struct Relay: Agent {
    struct State: Codable, Sendable { var forwarded = 0 }
    enum Message: Codable, Sendable { case value(Int) }

    func initialState() -> State { State() }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .value(let value) = message else { return }
        try await context.send(Counter.Message.value(value), to: "counter")
        state.forwarded += 1
    }
}

struct Counter: Agent {
    struct State: Codable, Sendable {
        var count = 0
        var sum = 0
        var last = 0
        /// Numbers that arrived again, or out of order: both must stay 0.
        var duplicates = 0
        var gaps = 0
    }
    enum Message: Codable, Sendable { case value(Int) }
    let count: Int
    let complete: @Sendable (State) -> Void

    func initialState() -> State { State() }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .value(let value) = message else { return }
        if value <= state.last {
            state.duplicates += 1
        } else {
            if value != state.last + 1 { state.gaps += 1 }
            state.last = value
        }
        state.count += 1
        state.sum += value
        if state.count >= count { complete(state) }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let count = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: troupe-crash-pipeline DATABASE RUN-ID COUNT\n".utf8))
    exit(64)
}
let store = try await SQLiteStore(path: arguments[1])
// Killed after the counter committed its last number but before saying so: nothing left to do.
if let last = try await store.checkpoints(of: AgentID(run: RunID(arguments[2]), name: "counter")).last,
    let state = try? JSONDecoder().decode(Counter.State.self, from: Data(last.state)), state.count >= count
{
    await store.close()
    print("complete count=\(state.count) sum=\(state.sum) duplicates=\(state.duplicates) gaps=\(state.gaps)")
    exit(0)
}
let (finished, finish) = AsyncStream.makeStream(of: Counter.State.self)
let blueprint = Blueprint("counting", durability: .durable) {
    Child("source", Source(count: count), restart: .transient)
    Child("relay", Relay())
    Child("counter", Counter(count: count) { state in finish.yield(state) })
}
let run = try Run(blueprint, id: RunID(arguments[2]), configuration: .init(store: store))
let driver = Task { try await run.run() }
var final: Counter.State?
for await state in finished {
    final = state
    break
}
run.shutdown()
try await driver.value
await store.close()
if let final {
    print("complete count=\(final.count) sum=\(final.sum) duplicates=\(final.duplicates) gaps=\(final.gaps)")
}
