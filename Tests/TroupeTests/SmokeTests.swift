import Testing
import Troupe
import TroupeTestKit

@Suite struct SmokeTests {
    @Test(.timeLimit(.minutes(1)))
    func handlerAgentCountsAndAnswers() async throws {
        let run = try Run(Blueprint("smoke") { Child("counter", Counter()) }, configuration: .test())
        let total = try await withRunning(run) {
            for n in 1...10 { try await run.send(Counter.Message.add(n), to: "counter") }
            return try await run.call("counter", timeout: .seconds(5)) { Counter.Message.total($0) }
        }
        #expect(total == 55)
    }
}
