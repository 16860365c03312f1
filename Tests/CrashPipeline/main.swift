// The crash test's subject: the durable counting pipeline of `agents/Counting.swift`. The crash test kills this
// process with SIGKILL at random moments, starts it again on the same database (which resumes the run), and checks
// the counter's final state.
//
//     CrashPipeline DATABASE RUN-ID COUNT
//
// DATABASE is a SQLite file, or a PostgreSQL URL (postgres://…).
//
// Prints `attached` once it holds the run's lease, then `complete …` and exits 0 once the counter has seen COUNT
// numbers. A run that ends otherwise exits 1, saying why on standard error (the engine logs there too).
import Foundation
import Troupe
import TroupeAgents
import TroupePostgres
import TroupeSQLite

let arguments = CommandLine.arguments
guard arguments.count == 4, let count = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: CrashPipeline DATABASE RUN-ID COUNT\n".utf8))
    exit(64)
}
func report(_ state: Counting.Counter.State) {
    print("complete count=\(state.count) sum=\(state.sum) duplicates=\(state.duplicates) gaps=\(state.gaps)")
}
let runID = RunID(arguments[2])
let store: any OperatorStore =
    arguments[1].hasPrefix("postgres") ? try await PostgresStore(url: arguments[1]) : try await SQLiteStore(path: arguments[1])
// Killed after the counter committed its last number but before saying so: nothing left to do.
if let last = try await store.checkpoints(of: AgentID(run: runID, name: "counter")).last,
    let state = try? JSONDecoder().decode(Counting.Counter.State.self, from: Data(last.state)), state.count >= count
{
    await store.close()
    report(state)
    exit(0)
}
let (finished, finish) = AsyncStream.makeStream(of: Counting.Counter.State.self)
let run = try Run(Counting.blueprint(count: count) { finish.yield($0) }, id: runID, configuration: .init(store: store))
// The run ending before the counter completes (its lease lost, an agent escalating) ends the wait below too:
// before, the process then waited for the counter for ever.
let driver = Task {
    defer { finish.finish() }
    try await run.run()
}
// Say when this process holds the run's lease, so that the crash test kills only processes that took it.
Task {
    while run.isResumed == nil { try await Task.sleep(for: .milliseconds(1)) }
    FileHandle.standardOutput.write(Data("attached\n".utf8))
}
var final: Counting.Counter.State?
for await state in finished {
    final = state
    break
}
run.shutdown()
do {
    try await driver.value
} catch {
    FileHandle.standardError.write(Data("CrashPipeline: the run ended with an error: \(error)\n".utf8))
    exit(1)
}
await store.close()
guard let final else {
    FileHandle.standardError.write(Data("CrashPipeline: the run ended before the counter completed\n".utf8))
    exit(1)
}
report(final)
