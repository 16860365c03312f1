/// The run's clock, with its type erased so that the engine is not generic over it.
///
/// Time is measured as a `Duration` since the clock was wrapped, which is all the supervisor's state machine
/// needs (restart windows, backoff) and keeps that state machine free of any clock type: its tests pass plain
/// durations. Any `Clock<Duration>` can be injected, including `ManualClock` from the test kit.
struct EngineClock: Sendable {
    private let elapsed: @Sendable () -> Duration
    private let sleeper: @Sendable (Duration) async throws -> Void

    init<C: Clock<Duration>>(_ clock: C) {
        let start = clock.now
        self.elapsed = { start.duration(to: clock.now) }
        self.sleeper = { duration in
            try await clock.sleep(until: clock.now.advanced(by: duration), tolerance: nil)
        }
    }

    /// Time since this clock was created.
    var now: Duration { elapsed() }

    /// Sleeps for `duration`; throws `CancellationError` if the task is cancelled first.
    func sleep(for duration: Duration) async throws {
        if duration <= .zero {
            try Task.checkCancellation()
            return
        }
        try await sleeper(duration)
    }
}
