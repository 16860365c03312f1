import Testing

@testable import Troupe

/// The supervisor's decisions and lifecycle, tested as pure functions: no tasks, explicit times.
@Suite struct StateMachineTests {
    struct Crash: Error {}
    typealias Machine = Supervisor.StateMachine

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

    /// What a crash led to, once the machine's orders were carried out.
    enum Outcome: Equatable {
        case restart([String], after: Duration)
        case keep, remove(String), escalate, ignore, quarantine
    }

    static let strategies: [RestartStrategy] = [.oneForOne, .oneForAll, .restForOne]
    static let restarts: [ChildSpec.Restart] = [.permanent, .transient, .temporary]

    /// A machine with children a, b, c, all started in order.
    func machine(
        _ strategy: RestartStrategy = .oneForOne,
        restart: ChildSpec.Restart = .permanent,
        intensity: RestartIntensity = .init(maxRestarts: 100, within: .seconds(10)),
        backoff: Backoff = .none
    ) -> Machine {
        var machine = Machine(strategy: strategy, intensity: intensity, backoff: backoff)
        for name in ["a", "b", "c"] { machine.add(name, restart: restart) }
        machine.begin(at: .zero)
        startAll(&machine, at: .zero)
        return machine
    }

    /// Starts whatever is queued and ready at `now`, in order, each `setUp` returning at once. Returns the order.
    @discardableResult
    func startAll(_ machine: inout Machine, at now: Duration) -> [String] {
        var started: [String] = []
        while case .launch(let name, let number) = machine.nextStart(at: now) {
            started.append(name)
            machine.childBegan(name, incarnation: number)
        }
        return started
    }

    func incarnation(_ machine: Machine, _ name: String) -> UInt64 {
        machine.phase(of: name)?.incarnation ?? 0
    }

    /// Reports an exit of `name`'s live incarnation and carries out a group restart's stops.
    func exit(_ machine: inout Machine, _ name: String, _ reason: ExitReason = .failed(Crash()), at now: Duration, random: Double = 0)
        -> Outcome
    {
        let action = machine.childExited(name, incarnation: incarnation(machine, name), reason: reason, at: now, random: random)
        switch action {
        case .ignore: return .ignore
        case .keep: return .keep
        case .quarantine: return .quarantine
        case .remove(let removed): return .remove(removed)
        case .escalate: return .escalate
        case .restartGroup(let stops, _, let restarted, let delay):
            for (sibling, number) in stops { machine.groupMemberStopped(sibling, incarnation: number) }
            machine.groupStopsFinished()
            return .restart(restarted, after: delay)
        }
    }

    @Test(arguments: strategies, restarts)
    func everyStrategyRestartTypeAndExitReason(strategy: RestartStrategy, restart: ChildSpec.Restart) {
        for reason in Reason.allCases {
            var machine = machine(strategy, restart: restart)
            let outcome = exit(&machine, "b", reason.exitReason, at: .seconds(1))
            let restartSet: [String] =
                switch (strategy, restart) {
                case (.oneForAll, .temporary), (.restForOne, .temporary): ["b"]  // temporary siblings are removed
                case (.oneForAll, _): ["a", "b", "c"]
                case (.restForOne, _): ["b", "c"]
                default: ["b"]
                }
            let expected: Outcome =
                switch (restart, reason) {
                case (.temporary, _): .remove("b")
                case (.transient, .failed): .restart(restartSet, after: .zero)
                case (.transient, _): .keep
                default: .restart(restartSet, after: .zero)
                }
            #expect(outcome == expected, "\(strategy) \(restart) \(reason)")
        }
    }

    @Test func temporaryChildIsForgotten() {
        var machine = machine(restart: .temporary)
        _ = exit(&machine, "b", .normal, at: .seconds(1))
        #expect(machine.order == ["a", "c"])
    }

    @Test func aTemporarySiblingOfAGroupRestartIsRemovedNotRestarted() {
        var machine = Machine(strategy: .oneForAll, intensity: .init(maxRestarts: 10, within: .seconds(10)), backoff: .none)
        machine.add("a", restart: .permanent)
        machine.add("t", restart: .temporary)
        machine.add("c", restart: .permanent)
        machine.begin(at: .zero)
        startAll(&machine, at: .zero)
        let action = machine.childExited("a", incarnation: 1, reason: .failed(Crash()), at: .seconds(1), random: 0)
        guard case .restartGroup(let stops, let removals, let restarted, _) = action else {
            Issue.record("expected a group restart, got \(action)")
            return
        }
        #expect(stops.map(\.name) == ["c", "t"])
        #expect(removals == ["t"])
        #expect(restarted == ["a", "c"])
        for (name, number) in stops { machine.groupMemberStopped(name, incarnation: number) }
        machine.groupStopsFinished()
        #expect(machine.order == ["a", "c"])
        #expect(startAll(&machine, at: .seconds(1)) == ["a", "c"])
    }

    @Test func siblingsThatAreNotRunningAreNotRestarted() throws {
        var machine = machine(.oneForAll)
        let stop = try machine.terminateChild("a")
        machine.stopFinished("a", incarnation: stop.stop!, then: .keep)
        #expect(exit(&machine, "b", at: .seconds(1)) == .restart(["b", "c"], after: .zero))
    }

    @Test func restForOneRestartsLaterSiblingsOnly() {
        var machine = machine(.restForOne)
        #expect(exit(&machine, "a", at: .seconds(1)) == .restart(["a", "b", "c"], after: .zero))
        startAll(&machine, at: .seconds(1))
        #expect(exit(&machine, "c", at: .seconds(2)) == .restart(["c"], after: .zero))
    }

    @Test func childrenStartOneAfterTheOtherInOrder() {
        var machine = Machine(strategy: .oneForOne, intensity: .init(maxRestarts: 1, within: .seconds(1)), backoff: .none)
        for name in ["a", "b", "c"] { machine.add(name, restart: .permanent) }
        machine.begin(at: .zero)
        #expect(machine.nextStart(at: .zero) == .launch("a", incarnation: 1))
        // Until a's setUp returns, nothing else starts.
        #expect(machine.nextStart(at: .zero) == .none)
        #expect(machine.nextStart(at: .seconds(5)) == .none)
        machine.childBegan("a", incarnation: 1)
        #expect(machine.nextStart(at: .zero) == .launch("b", incarnation: 1))
        machine.childBegan("b", incarnation: 1)
        #expect(machine.nextStart(at: .zero) == .launch("c", incarnation: 1))
        machine.childBegan("c", incarnation: 1)
        #expect(machine.nextStart(at: .zero) == .none)
        #expect(machine.queue.isEmpty && !machine.isStarting)
    }

    @Test func aGroupRestartsInStartOrderAfterItsDelay() {
        let backoff = Backoff.exponential(initial: .milliseconds(100), maximum: .seconds(1), jitter: 0)
        var machine = machine(.oneForAll, backoff: backoff)
        #expect(exit(&machine, "b", at: .seconds(1)) == .restart(["a", "b", "c"], after: .milliseconds(100)))
        #expect(machine.nextStart(at: .seconds(1)) == .wake(at: .seconds(1) + .milliseconds(100)))
        #expect(startAll(&machine, at: .seconds(1) + .milliseconds(100)) == ["a", "b", "c"])
    }

    @Test func aChildFailingInSetUpLetsTheNextOneStart() {
        var machine = Machine(strategy: .oneForOne, intensity: .init(maxRestarts: 10, within: .seconds(1)), backoff: .none)
        for name in ["a", "b"] { machine.add(name, restart: .permanent) }
        machine.begin(at: .zero)
        #expect(machine.nextStart(at: .zero) == .launch("a", incarnation: 1))
        _ = exit(&machine, "a", at: .zero)
        // b was queued first; a's restart queues behind it.
        #expect(!machine.hasStarted)
        #expect(startAll(&machine, at: .zero) == ["b", "a"])
        // a failed start counts as the end of that child's first start, once: the supervisor's start is over when
        // b has begun, and a's restart begins without counting again.
        #expect(machine.hasStarted)
    }

    @Test(arguments: [Reason.failed, .normal])
    func theSupervisorsStartEndsOnceEveryChildBeganOrEndedWhateverTheOrder(reason: Reason) {
        var machine = Machine(strategy: .oneForOne, intensity: .init(maxRestarts: 10, within: .seconds(1)), backoff: .none)
        for name in ["a", "b", "c"] { machine.add(name, restart: .transient) }
        machine.begin(at: .zero)
        #expect(machine.nextStart(at: .zero) == .launch("a", incarnation: 1))
        machine.childBegan("a", incarnation: 1)
        #expect(machine.nextStart(at: .zero) == .launch("b", incarnation: 1))
        _ = exit(&machine, "b", reason.exitReason, at: .zero)
        #expect(!machine.hasStarted, "c has not started")
        _ = exit(&machine, "a", reason.exitReason, at: .zero)
        #expect(!machine.hasStarted, "c has not started")
        startAll(&machine, at: .zero)
        #expect(machine.hasStarted)
        // A second run of the supervisor (its parent restarted it) waits for every child again.
        _ = machine.beginStopping()
        machine.begin(at: .seconds(1))
        #expect(!machine.hasStarted)
        startAll(&machine, at: .seconds(1))
        #expect(machine.hasStarted)
    }

    @Test func countDoesNotCountAChildWaitingOutItsBackoffAsActive() {
        let backoff = Backoff.exponential(initial: .seconds(1), maximum: .seconds(5), jitter: 0)
        var machine = machine(backoff: backoff)
        _ = exit(&machine, "a", at: .seconds(1))
        _ = exit(&machine, "b", at: .seconds(1))
        #expect(machine.activeCount == 1)
        startAll(&machine, at: .seconds(3))
        #expect(machine.activeCount == 3)
    }

    @Test func intensityEscalatesOnTheRestartBeyondTheLimit() {
        var machine = machine(intensity: .init(maxRestarts: 2, within: .seconds(10)))
        #expect(exit(&machine, "a", at: .seconds(1)) == .restart(["a"], after: .zero))
        startAll(&machine, at: .seconds(1))
        #expect(exit(&machine, "a", at: .seconds(2)) == .restart(["a"], after: .zero))
        startAll(&machine, at: .seconds(2))
        #expect(exit(&machine, "b", at: .seconds(3)) == .escalate)
        #expect(machine.isStopping)
        // Once stopping, further exits are expected and ignored.
        #expect(exit(&machine, "c", at: .seconds(4)) == .ignore)
    }

    @Test func restartsOutsideTheWindowDoNotCount() {
        var machine = machine(intensity: .init(maxRestarts: 1, within: .seconds(5)))
        for second in stride(from: 0, to: 60, by: 6) {
            #expect(exit(&machine, "a", at: .seconds(second)) == .restart(["a"], after: .zero), "at \(second)s")
            startAll(&machine, at: .seconds(second))
        }
    }

    @Test func zeroIntensityEscalatesOnTheFirstRestart() {
        var machine = machine(intensity: .init(maxRestarts: 0, within: .seconds(5)))
        #expect(exit(&machine, "a", at: .seconds(1)) == .escalate)
    }

    @Test func backoffGrowsExponentiallyUpToItsMaximum() {
        let backoff = Backoff.exponential(initial: .milliseconds(10), maximum: .milliseconds(80), jitter: 0, resetAfter: .seconds(60))
        var machine = machine(backoff: backoff)
        var delays: [Duration] = []
        var now = Duration.zero
        for _ in 0..<6 {
            now += .milliseconds(1)
            guard case .restart(_, let delay) = exit(&machine, "a", at: now, random: 0.5) else {
                Issue.record("expected a restart")
                return
            }
            delays.append(delay)
            now += delay
            startAll(&machine, at: now)
        }
        #expect(delays == [10, 20, 40, 80, 80, 80].map { .milliseconds($0) })
    }

    @Test func backoffStartsOverAfterAStableRun() {
        let backoff = Backoff.exponential(initial: .milliseconds(10), maximum: .seconds(1), jitter: 0, resetAfter: .seconds(30))
        var machine = machine(backoff: backoff)
        _ = exit(&machine, "a", at: .seconds(1))
        startAll(&machine, at: .seconds(1) + .milliseconds(10))
        #expect(exit(&machine, "a", at: .seconds(2)) == .restart(["a"], after: .milliseconds(20)))
        startAll(&machine, at: .seconds(2) + .milliseconds(20))
        // Ran for 40 s: the next failure counts as a first one again.
        #expect(exit(&machine, "a", at: .seconds(42), random: 0.5) == .restart(["a"], after: .milliseconds(10)))
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

    @Test func beginForgetsPastRestarts() {
        var machine = machine(intensity: .init(maxRestarts: 1, within: .seconds(60)))
        _ = exit(&machine, "a", at: .seconds(1))
        _ = machine.beginStopping()
        machine.begin(at: .seconds(2))
        #expect(!machine.isStopping)
        #expect(machine.restartsInWindow(at: .seconds(2)) == 0)
        startAll(&machine, at: .seconds(2))
        #expect(exit(&machine, "a", at: .seconds(3)) == .restart(["a"], after: .zero))
    }

    // MARK: Operator events interleaved with exits and shutdown

    @Test func anOperatorRestartDuringAGroupRestartIsRefusedNotDoubled() throws {
        var machine = machine(.restForOne)
        // a crashes: b is being stopped (its stop ladder is in flight) when the operator's restart of a arrives.
        let action = machine.childExited("a", incarnation: 1, reason: .failed(Crash()), at: .seconds(1), random: 0)
        guard case .restartGroup(let stops, _, _, _) = action else {
            Issue.record("expected a group restart")
            return
        }
        #expect(stops.map(\.name) == ["c", "b"])
        #expect(throws: Machine.Refusal.restarting) { try machine.restartChild("b", at: .seconds(1)) }
        for (name, number) in stops { machine.groupMemberStopped(name, incarnation: number) }
        machine.groupStopsFinished()
        // a waits in the queue: a second restart is refused too, and only one incarnation ever starts.
        #expect(throws: Machine.Refusal.restarting) { try machine.restartChild("a", at: .seconds(1)) }
        #expect(startAll(&machine, at: .seconds(1)) == ["a", "b", "c"])
        #expect(incarnation(machine, "a") == 2)
        #expect(machine.activeCount == 3)
    }

    @Test func terminatingAChildWaitingToRestartKeepsItStopped() throws {
        let backoff = Backoff.exponential(initial: .seconds(1), maximum: .seconds(5), jitter: 0)
        var machine = machine(backoff: backoff)
        _ = exit(&machine, "a", at: .seconds(1))
        let stop = try machine.terminateChild("a")
        #expect(stop.stop == nil && !stop.removed)
        // The restart it was waiting for never happens.
        #expect(startAll(&machine, at: .seconds(10)) == [])
        #expect(machine.phase(of: "a") == .stopped)
    }

    @Test func terminatingARunningChildStopsItOnceAndARepeatIsRefused() throws {
        var machine = machine()
        let stop = try machine.terminateChild("b")
        #expect(stop.stop == 1)
        #expect(throws: Machine.Refusal.restarting) { try machine.terminateChild("b") }
        // Its exit, reported while the ladder stops it, is not a crash.
        #expect(exit(&machine, "b", at: .seconds(1)) == .ignore)
        machine.stopFinished("b", incarnation: 1, then: .keep)
        #expect(machine.phase(of: "b") == .stopped)
        #expect(startAll(&machine, at: .seconds(2)) == [])
    }

    @Test func terminatingATemporaryChildRemovesIt() throws {
        var machine = machine(restart: .temporary)
        let stop = try machine.terminateChild("b")
        #expect(stop.removed)
        machine.stopFinished("b", incarnation: stop.stop!, then: .remove)
        #expect(machine.order == ["a", "c"])
        try machine.startChild("b", restart: .temporary, at: .seconds(1))
        #expect(startAll(&machine, at: .seconds(1)) == ["b"])
    }

    @Test func restartingAStoppedChildQueuesOneIncarnation() throws {
        var machine = machine()
        let stop = try machine.terminateChild("a")
        machine.stopFinished("a", incarnation: stop.stop!, then: .keep)
        #expect(try machine.restartChild("a", at: .seconds(1)) == nil)
        #expect(throws: Machine.Refusal.restarting) { try machine.restartChild("a", at: .seconds(1)) }
        #expect(startAll(&machine, at: .seconds(1)) == ["a"])
        #expect(incarnation(machine, "a") == 2)
    }

    @Test func deletingIsRefusedForLiveAndQueuedChildren() throws {
        var machine = machine()
        #expect(throws: Machine.Refusal.running) { try machine.deleteChild("a") }
        #expect(throws: Machine.Refusal.unknown) { try machine.deleteChild("zz") }
        let stop = try machine.terminateChild("a")
        machine.stopFinished("a", incarnation: stop.stop!, then: .keep)
        _ = try machine.restartChild("a", at: .seconds(1))
        #expect(throws: Machine.Refusal.restarting) { try machine.deleteChild("a") }
        startAll(&machine, at: .seconds(1))
        let again = try machine.terminateChild("a")
        machine.stopFinished("a", incarnation: again.stop!, then: .keep)
        try machine.deleteChild("a")
        #expect(machine.order == ["b", "c"])
        #expect(throws: Machine.Refusal.duplicate) { try machine.startChild("b", restart: .permanent, at: .zero) }
    }

    @Test func aChildAddedAfterADeletionIsLastInStartOrderWithALifeOfItsOwn() throws {
        var machine = machine(.restForOne)
        let stop = try machine.terminateChild("a")
        machine.stopFinished("a", incarnation: stop.stop!, then: .keep)
        try machine.deleteChild("a")
        try machine.startChild("d", restart: .permanent, at: .seconds(1))
        #expect(machine.order == ["b", "c", "d"])
        #expect(machine.phase(of: "a") == nil)
        #expect(machine.phase(of: "d") == .queued(notBefore: .seconds(1)))
        #expect(startAll(&machine, at: .seconds(1)) == ["d"])
        #expect(machine.phase(of: "d") == .running(1) && machine.phase(of: "b") == .running(1))
        // Rest-for-one: a crash of c restarts c and the child after it, d.
        #expect(exit(&machine, "c", at: .seconds(2)) == .restart(["c", "d"], after: .zero))
        #expect(startAll(&machine, at: .seconds(2)) == ["c", "d"])
        #expect(machine.phase(of: "d") == .running(2) && machine.phase(of: "b") == .running(1))
        #expect(throws: Machine.Refusal.unknown) { try machine.restartChild("a", at: .seconds(3)) }
    }

    @Test func shutdownStopsLiveChildrenInReverseOrderAndDropsTheQueue() {
        let backoff = Backoff.exponential(initial: .seconds(1), maximum: .seconds(5), jitter: 0)
        var machine = machine(backoff: backoff)
        _ = exit(&machine, "b", at: .seconds(1))
        let live = machine.beginStopping()
        #expect(live.map(\.name) == ["c", "a"])
        #expect(machine.phase(of: "b") == .stopped)
        #expect(machine.nextStart(at: .seconds(10)) == .none)
        // Operator restarts queued behind the shutdown do not start anything.
        for (name, number) in live { machine.stopFinished(name, incarnation: number, then: .restart(notBefore: .zero)) }
        #expect(machine.phase(of: "a") == .stopped)
        #expect(machine.nextStart(at: .seconds(10)) == .none)
    }

    @Test func aStaleExitReportIsIgnored() throws {
        var machine = machine()
        _ = exit(&machine, "a", at: .seconds(1))
        startAll(&machine, at: .seconds(1))
        // Incarnation 1's report arrives late: incarnation 2 is current.
        #expect(machine.childExited("a", incarnation: 1, reason: .failed(Crash()), at: .seconds(2), random: 0) == .ignore)
        #expect(machine.phase(of: "a") == .running(2))
    }

    @Test func aQuarantinedChildIsKeptAndNotRestarted() throws {
        var machine = machine()
        #expect(
            machine.childExited("a", incarnation: 1, reason: .failed(Crash()), quarantined: true, at: .seconds(1), random: 0)
                == .quarantine
        )
        #expect(startAll(&machine, at: .seconds(2)) == [])
        #expect(try machine.restartChild("a", at: .seconds(2)) == nil)
        #expect(startAll(&machine, at: .seconds(2)) == ["a"])
    }
}
