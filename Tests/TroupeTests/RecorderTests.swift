import Testing
import TroupeTestKit

/// Waits in tests end: a value that never comes fails the test instead of hanging the suite.
@Suite(.timeLimit(.minutes(3)))
struct RecorderTests {
    @Test func aWaitThatIsNeverSatisfiedEndsAtItsDeadlineSayingWhatItSaw() async throws {
        let seen = Recorder<Int>()
        seen.record(7)
        let error = await #expect(throws: Recorder<Int>.Timeout.self) {
            try await seen.wait(forCount: 2, timeout: .milliseconds(50))
        }
        #expect(error?.description.contains("2 values") == true, "\(String(describing: error))")
        #expect(error?.description.contains("[7]") == true, "\(String(describing: error))")
        // The waiter is gone: a later value does not resume it twice.
        seen.record(8)
        #expect(try await seen.wait(forCount: 2) == [7, 8])
    }

    @Test func aCancelledWaitEnds() async throws {
        let seen = Recorder<Int>()
        let waiting = Task { try await seen.wait(forCount: 1, timeout: .seconds(3600)) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }

    @Test func aWaitEndsAsSoonAsItsConditionHolds() async throws {
        let seen = Recorder<Int>()
        let waiting = Task { try await seen.wait(timeout: .seconds(3600)) { $0.contains(3) } }
        for value in 1...3 { seen.record(value) }
        #expect(try await waiting.value == [1, 2, 3])
    }
}
