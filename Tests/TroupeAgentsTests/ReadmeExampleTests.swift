// README example: begin
import Troupe

struct Counter: HandlerAgent {
    struct State: AgentState { var total = 0 }
    enum Message: Codable, Sendable {
        case add(Int)
        case total(Reply<Int>)
    }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .add(let n): state.total += n
        case .total(let reply): reply(state.total)
        }
    }
}

let counting = Blueprint("counting", strategy: .oneForOne, intensity: .init(maxRestarts: 5, within: .seconds(10))) {
    Child("counter", Counter())
    Pool("worker", count: 4) { _ in Counter() }
}

func countToTen() async throws -> Int {
    let run = try Run(counting)
    let running = Task { try await run.run() }
    for n in 1...10 { try await run.send(Counter.Message.add(n), to: "counter") }
    let total = try await run.call("counter", timeout: .seconds(30)) { Counter.Message.total($0) }
    run.shutdown()
    try await running.value
    return total
}
// README example: end

import Foundation
import Testing

@Suite struct ReadmeExampleTests {
    @Test(.timeLimit(.minutes(3)))
    func theReadmeExampleCountsToFiftyFive() async throws {
        #expect(try await countToTen() == 55)
    }

    @Test func theReadmeShowsThisExampleVerbatim() throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let source = try String(contentsOf: here, encoding: .utf8)
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let begin = try #require(source.range(of: "// README example: begin\n"))
        let end = try #require(source.range(of: "// README example: end"))
        let example = String(source[begin.upperBound..<end.lowerBound])
        #expect(readme.contains("```swift\n" + example + "```"), "README.md's example differs from \(here.lastPathComponent)")
        let article = try String(contentsOf: root.appendingPathComponent("Sources/Troupe/Documentation.docc/WritingAgents.md"), encoding: .utf8)
        #expect(article.contains("```swift\n" + example + "```"), "WritingAgents.md's example differs from \(here.lastPathComponent)")
    }
}
