import Testing

@testable import Troupe

/// The supervisor's decisions, tested as pure functions: no tasks, explicit times.
@Suite struct StateMachineTests {
    struct Crash: Error {}

    enum Reason: String, CaseIterable, CustomTestStringConvertible {
        case normal, failed, cancelled
        var exitReason: ExitReason {
            switch self {
            case .normal: .normal
            case .failed: .failed(Crash())
            case .cancelled: .cancelled
            }
        }
        var testDescription: String { rawValue }
    }

    static let strategies: [RestartStrategy] = [.oneForOne, .oneForAll, .restForOne]
    static let restarts: [ChildSpec.Restart] = [.permanent, .transient, .temporary]

    func machine(
        _ strategy: RestartStrategy = .oneForOne,
        restart: ChildSpec.Restart = .permanent,
        intensity: RestartIntensity = .init(maxRestarts: 100, within: .seconds(10)),
        backoff: Backoff = .none
    ) -> Supervisor.StateMachine {
        var machine = Supervisor.StateMachine(strategy: strategy, intensity: intensity, backoff: backoff)
        for name in ["a", "b", "c"] {
            machine.add(name, restart: restart)
            machine.started(name, at: .zero)
        }
        return machine
    }

    @Test(arguments: strategies, restarts)
    func everyStrategyRestartTypeAndExitReason(strategy: RestartStrategy, restart: ChildSpec.Restart) {
        for reason in Reason.allCases {
            var machine = machine(strategy, restart: restart)
            let action = machine.childExited("b", reason: reason.exitReason, at: .seconds(1), random: 0.5)
            let restartSet: [String] =
                switch strategy {
                case .oneForAll: ["a", "b", "c"]
                case .restForOne: ["b", "c"]
                default: ["b"]
                }
            let expected: Supervisor.StateMachine.ChildExitedAction =
                switch (restart, reason) {
                case (.temporary, _): .remove("b")
                case (.transient, .failed): .restart(restartSet, after: .zero)
                case (.transient, _): .keepStopped("b")
                default: .restart(restartSet, after: .zero)
                }
            #expect(action == expected, "\(strategy) \(restart) \(reason)")
        }
    }

    @Test func temporaryChildIsForgotten() {
        var machine = machine(restart: .temporary)
        _ = machine.childExited("b", reason: .normal, at: .seconds(1), random: 0)
        #expect(machine.order == ["a", "c"])
    }

    @Test func siblingsThatAreNotRunningAreNotRestarted() {
        var machine = machine(.oneForAll)
        machine.stopped("a")
        #expect(machine.childExited("b", reason: .failed(Crash()), at: .seconds(1), random: 0) == .restart(["b", "c"], after: .zero))
    }

    @Test func restForOneRestartsLaterSiblingsOnly() {
        var machine = machine(.restForOne)
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(1), random: 0) == .restart(["a", "b", "c"], after: .zero))
        #expect(machine.childExited("c", reason: .failed(Crash()), at: .seconds(2), random: 0) == .restart(["c"], after: .zero))
    }

    @Test func intensityEscalatesOnTheRestartBeyondTheLimit() {
        var machine = machine(intensity: .init(maxRestarts: 2, within: .seconds(10)))
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(1), random: 0) == .restart(["a"], after: .zero))
        machine.started("a", at: .seconds(1))
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(2), random: 0) == .restart(["a"], after: .zero))
        machine.started("a", at: .seconds(2))
        #expect(machine.childExited("b", reason: .failed(Crash()), at: .seconds(3), random: 0) == .escalate)
        #expect(machine.isStopping)
        // Once stopping, further exits are expected and ignored.
        #expect(machine.childExited("c", reason: .failed(Crash()), at: .seconds(4), random: 0) == .ignore)
    }

    @Test func restartsOutsideTheWindowDoNotCount() {
        var machine = machine(intensity: .init(maxRestarts: 1, within: .seconds(5)))
        for second in stride(from: 0, to: 60, by: 6) {
            let action = machine.childExited("a", reason: .failed(Crash()), at: .seconds(second), random: 0)
            #expect(action == .restart(["a"], after: .zero), "at \(second)s")
            machine.started("a", at: .seconds(second))
        }
    }

    @Test func zeroIntensityEscalatesOnTheFirstRestart() {
        var machine = machine(intensity: .init(maxRestarts: 0, within: .seconds(5)))
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(1), random: 0) == .escalate)
    }

    @Test func backoffGrowsExponentiallyUpToItsMaximum() {
        let backoff = Backoff.exponential(initial: .milliseconds(10), maximum: .milliseconds(80), jitter: 0, resetAfter: .seconds(60))
        var machine = machine(backoff: backoff)
        var delays: [Duration] = []
        var now = Duration.zero
        for _ in 0..<6 {
            now += .milliseconds(1)
            guard case .restart(_, let delay) = machine.childExited("a", reason: .failed(Crash()), at: now, random: 0.5) else {
                Issue.record("expected a restart")
                return
            }
            delays.append(delay)
            now += delay
            machine.started("a", at: now)
        }
        #expect(delays == [10, 20, 40, 80, 80, 80].map { .milliseconds($0) })
    }

    @Test func backoffStartsOverAfterAStableRun() {
        let backoff = Backoff.exponential(initial: .milliseconds(10), maximum: .seconds(1), jitter: 0, resetAfter: .seconds(30))
        var machine = machine(backoff: backoff)
        _ = machine.childExited("a", reason: .failed(Crash()), at: .seconds(1), random: 0)
        machine.started("a", at: .seconds(1))
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(2), random: 0) == .restart(["a"], after: .milliseconds(20)))
        machine.started("a", at: .seconds(2))
        // Ran for 40 s: the next failure counts as a first one again.
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(42), random: 0.5) == .restart(["a"], after: .milliseconds(10)))
    }

    @Test(arguments: [(0.0, 8), (0.5, 10), (0.9999, 12)])
    func jitterSpreadsTheDelay(random: Double, milliseconds: Int) {
        let backoff = Backoff.exponential(initial: .milliseconds(10), maximum: .seconds(1), jitter: 0.2)
        let delay = backoff.delay(attempt: 1, random: random)
        let error = delay - .milliseconds(milliseconds)
        #expect(error < .microseconds(5) && error > .microseconds(-5), "\(delay)")
    }

    @Test func noBackoffMeansImmediateRestarts() {
        #expect(Backoff.none.delay(attempt: 1, random: 0.7) == .zero)
        #expect(Backoff.none.delay(attempt: 50, random: 0.7) == .zero)
    }

    @Test func resetForgetsPastRestarts() {
        var machine = machine(intensity: .init(maxRestarts: 1, within: .seconds(60)))
        _ = machine.childExited("a", reason: .failed(Crash()), at: .seconds(1), random: 0)
        machine.beginStopping()
        machine.reset()
        #expect(!machine.isStopping)
        #expect(machine.restartsInWindow(at: .seconds(2)) == 0)
        machine.started("a", at: .seconds(2))
        #expect(machine.childExited("a", reason: .failed(Crash()), at: .seconds(3), random: 0) == .restart(["a"], after: .zero))
    }
}
