import DequeModule

extension Supervisor {
    /// The supervisor's decisions, free of tasks and clocks: given a child's exit, what to do.
    ///
    /// Time comes in as a `Duration` since the run started and chance as a number in `0..<1`, so every decision
    /// is a pure function of its inputs and is tested by calling it, with no tasks and no waiting. The actor
    /// carries the returned actions out.
    struct StateMachine {
        enum ChildExitedAction: Equatable {
            /// Restart these children, in start order, after `delay`; running siblings among them are stopped
            /// first, in reverse start order.
            case restart([String], after: Duration)
            /// Too many restarts: stop every child in reverse start order and fail.
            case escalate
            /// Keep the child, stopped (a transient child that exited normally).
            case keepStopped(String)
            /// Remove the child (a temporary child).
            case remove(String)
            /// Nothing to do: the supervisor is stopping, or the child is unknown.
            case ignore
        }

        private struct Child {
            var restart: ChildSpec.Restart
            var running = false
            var consecutiveRestarts = 0
            var startedAt: Duration = .zero
        }

        let strategy: RestartStrategy
        let intensity: RestartIntensity
        let backoff: Backoff
        /// Children in start order.
        private(set) var order: [String] = []
        private var children: [String: Child] = [:]
        /// When the restarts inside the current intensity window happened.
        private var restartTimes: Deque<Duration> = []
        /// Whether the supervisor is shutting down or escalating: exits are then expected and not acted on.
        private(set) var isStopping = false

        init(strategy: RestartStrategy, intensity: RestartIntensity, backoff: Backoff) {
            self.strategy = strategy
            self.intensity = intensity
            self.backoff = backoff
        }

        /// Adds a child at the end of the start order.
        mutating func add(_ name: String, restart: ChildSpec.Restart) {
            precondition(children[name] == nil, "child '\(name)' added twice")
            order.append(name)
            children[name] = Child(restart: restart)
        }

        mutating func remove(_ name: String) {
            children[name] = nil
            order.removeAll { $0 == name }
        }

        func isRunning(_ name: String) -> Bool { children[name]?.running ?? false }

        /// A new incarnation of the child is (about to be) running, from `now`.
        mutating func started(_ name: String, at now: Duration) {
            children[name]?.running = true
            children[name]?.startedAt = now
        }

        /// The child was stopped on purpose (terminated, or stopped to be restarted with a sibling).
        mutating func stopped(_ name: String) {
            children[name]?.running = false
        }

        /// A fresh start of the supervisor (first run, or restarted by its parent): forget past restarts.
        mutating func reset() {
            isStopping = false
            restartTimes.removeAll()
            for name in order {
                children[name]?.running = false
                children[name]?.consecutiveRestarts = 0
            }
        }

        /// The supervisor starts shutting down; later exits are ignored.
        mutating func beginStopping() {
            isStopping = true
        }

        /// Decides what to do about a child that exited on its own.
        ///
        /// - Parameters:
        ///   - name: The child.
        ///   - reason: How it ended.
        ///   - now: The time, as a duration since the run started.
        ///   - random: A draw in `0..<1` for the backoff's jitter.
        mutating func childExited(
            _ name: String,
            reason: ExitReason,
            at now: Duration,
            random: Double
        ) -> ChildExitedAction {
            guard !isStopping, var child = children[name] else { return .ignore }
            child.running = false
            children[name] = child
            switch child.restart.value {
            case .temporary:
                remove(name)
                return .remove(name)
            case .transient:
                guard reason.isFailure else { return .keepStopped(name) }
            case .permanent:
                break
            }

            restartTimes.append(now)
            while let first = restartTimes.first, now - first >= intensity.period {
                restartTimes.removeFirst()
            }
            if restartTimes.count > intensity.maxRestarts {
                isStopping = true
                return .escalate
            }

            if now - child.startedAt >= backoff.resetAfter { child.consecutiveRestarts = 0 }
            child.consecutiveRestarts += 1
            children[name] = child
            let delay = backoff.delay(attempt: child.consecutiveRestarts, random: random)

            switch strategy.value {
            case .oneForOne:
                return .restart([name], after: delay)
            case .oneForAll:
                return .restart(order.filter { $0 == name || isRunning($0) }, after: delay)
            case .restForOne:
                guard let index = order.firstIndex(of: name) else { return .restart([name], after: delay) }
                return .restart([name] + order[(index + 1)...].filter { isRunning($0) }, after: delay)
            }
        }

        /// How many restarts fall within the intensity window ending `now`.
        func restartsInWindow(at now: Duration) -> Int {
            restartTimes.count { now - $0 < intensity.period }
        }
    }
}
