import DequeModule

extension Supervisor {
    /// The supervisor's whole state, free of tasks and clocks: every child's lifecycle, the start queue and the
    /// restart intensity window.
    ///
    /// Every change is an event — a child began, exited or finished stopping, an operator request, a timer, the
    /// shutdown — handled by one method that returns what the actor must do. The actor consumes its events one at a
    /// time in one loop, so no two transitions ever interleave (OTP's `supervisor.erl` handles calls and `'EXIT'`
    /// signals the same way). Time comes in as a `Duration` since the run started and chance as a number in
    /// `0..<1`, so every decision is a pure function of its inputs, tested without tasks.
    ///
    /// A child's life:
    ///
    /// ```
    ///   idle ──(supervisor starts)──▶ queued ──(its turn, not before its delay)──▶ starting(n)
    ///   starting(n) ──(setUp returned)──▶ running(n) ──(exit)──▶ decided by strategy and restart type
    ///   running(n)/starting(n) ──(stop requested)──▶ stopping(n) ──(ladder done)──▶ queued | stopped | removed
    ///   exited / stopped / quarantined ──(operator restart)──▶ queued
    /// ```
    ///
    /// At most one child is `starting` at a time: the next one's `setUp` begins only after the previous one's
    /// returned (or it exited), as OTP's synchronous start does, for the first start and for group restarts alike.
    struct StateMachine {
        /// Where a child is in its life.
        enum Phase: Equatable {
            /// Never started by this run of the supervisor.
            case idle
            /// Waiting in the start queue: for its turn, and not before `notBefore` (a restart's backoff).
            case queued(notBefore: Duration)
            /// Incarnation `n` is launched; its `setUp` has not returned yet.
            case starting(UInt64)
            /// Incarnation `n` runs.
            case running(UInt64)
            /// The shutdown ladder is stopping incarnation `n`.
            case stopping(UInt64)
            /// Stopped on purpose (terminated, or the supervisor shut down).
            case stopped
            /// Ended on its own and not restarted (a transient child that exited normally).
            case exited
            /// Its checkpoint cannot be read: not restarted until an operator restarts it.
            case quarantined

            /// The live incarnation, if any.
            var incarnation: UInt64? {
                switch self {
                case .starting(let n), .running(let n), .stopping(let n): n
                default: nil
                }
            }
        }

        struct Child {
            var restart: ChildSpec.Restart
            var phase: Phase = .idle
            var consecutiveRestarts = 0
            var startedAt: Duration = .zero
            /// The number of the latest incarnation (0 if never launched).
            var incarnations: UInt64 = 0
            /// Restarts since the supervisor started, automatic and operator ones.
            var restarts = 0
            /// Queued by ``StateMachine/begin(at:)``, its first incarnation has neither returned from `setUp` nor
            /// ended: the supervisor's own start waits for it.
            var awaitingFirstStart = false

            /// Moves a starting incarnation to running; says whether it was that incarnation's start.
            mutating func begin(_ incarnation: UInt64) -> Bool {
                guard phase == .starting(incarnation) else { return false }
                phase = .running(incarnation)
                return true
            }
        }

        /// What to do once a child's stop ladder has finished.
        enum AfterStop: Equatable {
            /// Queue it again (a restart of it or its group).
            case restart(notBefore: Duration)
            /// Keep it, stopped.
            case keep
            /// Remove it (a temporary child).
            case remove
        }

        /// What the actor does about a child's exit.
        enum ExitAction: Equatable {
            /// Nothing: a stale report (an incarnation already replaced or being stopped), or the supervisor is
            /// stopping.
            case ignore
            /// The child stays, stopped or exited; nothing else to do.
            case keep
            /// The child is quarantined: keep it and its messages, refuse new ones.
            case quarantine
            /// Remove the child's runtime for good (temporary).
            case remove(String)
            /// Stop these live siblings through their ladders, one after the other (reverse start order), report
            /// each with ``groupMemberStopped(_:incarnation:)``, remove the runtimes of the temporary children in
            /// `remove`, then call ``groupStopsFinished()``, which queues `restart` (in start order) to start after
            /// `after`.
            case restartGroup(
                stop: [(name: String, incarnation: UInt64)],
                remove: [String],
                restart: [String],
                after: Duration
            )
            /// Too many restarts: stop every child in reverse start order and fail.
            case escalate

            static func == (lhs: ExitAction, rhs: ExitAction) -> Bool {
                switch (lhs, rhs) {
                case (.ignore, .ignore), (.keep, .keep), (.quarantine, .quarantine), (.escalate, .escalate): true
                case (.remove(let a), .remove(let b)): a == b
                case (.restartGroup(let s1, let r1, let q1, let d1), .restartGroup(let s2, let r2, let q2, let d2)):
                    s1.map(\.name) == s2.map(\.name) && s1.map(\.incarnation) == s2.map(\.incarnation) && r1 == r2
                        && q1 == q2 && d1 == d2
                default: false
                }
            }
        }

        /// What the actor does next about starting children.
        enum StartAction: Equatable {
            /// Launch incarnation `incarnation` of `name` now.
            case launch(String, incarnation: UInt64)
            /// Nothing can start before `at`: set a timer.
            case wake(at: Duration)
            /// Nothing to start (or one is starting already).
            case none
        }

        /// A refusal of an operator request that conflicts with the child's phase (OTP's `{error, running}` and
        /// `{error, restarting}`).
        enum Refusal: Error, Equatable {
            case unknown
            case duplicate
            case running
            case restarting
        }

        let strategy: RestartStrategy
        let intensity: RestartIntensity
        let backoff: Backoff
        /// Children in start order.
        private(set) var order: [String] = []
        private(set) var children: [String: Child] = [:]
        /// Children waiting to start, in the order they are to start.
        private(set) var queue: Deque<String> = []
        /// When the restarts inside the current intensity window happened.
        private var restartTimes: Deque<Duration> = []
        /// Whether the supervisor is shutting down or escalating: exits are then expected and not acted on.
        private(set) var isStopping = false
        /// The child launched last: the only one that can be `starting`.
        private var launched: String?
        /// How many children are ``Child/awaitingFirstStart`` (a flag on each child, not a set of names: a start
        /// of 100,000 children would hash each name twice more).
        private var awaitingFirstStart = 0

        init(strategy: RestartStrategy, intensity: RestartIntensity, backoff: Backoff) {
            self.strategy = strategy
            self.intensity = intensity
            self.backoff = backoff
        }

        // MARK: Reading

        func phase(of name: String) -> Phase? { children[name]?.phase }

        func child(_ name: String) -> Child? { children[name] }

        /// Whether a child occupies a live incarnation or a place in the start queue.
        private func isActiveOrQueued(_ name: String) -> Bool {
            switch children[name]?.phase {
            case .queued, .starting, .running, .stopping: true
            default: false
            }
        }

        /// Children with a live incarnation that is not being stopped, as OTP's `count_children` counts `active`:
        /// a child waiting out its restart delay is not active.
        var activeCount: Int {
            children.values.count { child in
                switch child.phase {
                case .starting, .running: true
                default: false
                }
            }
        }

        /// Whether a child is in its `setUp`. Only the child launched last can be: nothing is launched while
        /// another starts.
        var isStarting: Bool {
            guard let launched, case .starting = children[launched]?.phase else { return false }
            return true
        }

        /// Whether the supervisor's own start is over: every child queued by ``begin(at:)`` has returned from its
        /// first `setUp` or ended (a child that failed at start and waits out a restart counts as started).
        var hasStarted: Bool { awaitingFirstStart == 0 }

        /// Changes every child in place, index by index: iterating `children.indices` would hold the storage and
        /// copy all of it at the first change.
        private mutating func changeEveryChild(_ change: (inout Child) -> Void) {
            var index = children.values.startIndex
            while index != children.values.endIndex {
                change(&children.values[index])
                children.values.formIndex(after: &index)
            }
        }

        /// Marks `name` as no longer awaited by the supervisor's start.
        private mutating func stopAwaitingFirstStart(_ name: String) {
            guard awaitingFirstStart > 0, children[name]?.awaitingFirstStart == true else { return }
            children[name]?.awaitingFirstStart = false
            awaitingFirstStart -= 1
        }

        /// How many restarts fall within the intensity window ending `now`.
        func restartsInWindow(at now: Duration) -> Int {
            restartTimes.count { now - $0 < intensity.period }
        }

        // MARK: Events: the supervisor's own life

        /// Makes room for `count` children, so that a large tree is built without rehashing.
        mutating func reserveCapacity(_ count: Int) {
            order.reserveCapacity(count)
            children.reserveCapacity(count)
        }

        /// Adds a child at the end of the start order, idle.
        mutating func add(_ name: String, restart: ChildSpec.Restart) {
            precondition(children[name] == nil, "child '\(name)' added twice")
            order.append(name)
            children[name] = Child(restart: restart)
        }

        /// The supervisor starts (first run, or restarted by its parent): forget past restarts and queue every
        /// child in start order.
        mutating func begin(at now: Duration) {
            isStopping = false
            restartTimes.removeAll()
            queue.removeAll()
            changeEveryChild { child in
                child.consecutiveRestarts = 0
                child.restarts = 0
                child.phase = .queued(notBefore: now)
                child.awaitingFirstStart = true
            }
            queue.append(contentsOf: order)
            awaitingFirstStart = order.count
        }

        /// The supervisor is shutting down: later exits are ignored, nothing more starts. Returns the live
        /// children to stop, in reverse start order; queued ones become stopped at once.
        mutating func beginStopping() -> [(name: String, incarnation: UInt64)] {
            isStopping = true
            if awaitingFirstStart > 0 {
                changeEveryChild { $0.awaitingFirstStart = false }
                awaitingFirstStart = 0
            }
            for name in queue { children[name]?.phase = .stopped }
            queue.removeAll()
            var live: [(String, UInt64)] = []
            for name in order.reversed() {
                switch children[name]?.phase {
                case .starting(let n), .running(let n):
                    children[name]?.phase = .stopping(n)
                    live.append((name, n))
                default: break
                }
            }
            return live
        }

        // MARK: Events: starting

        /// What to start next, if anything, at `now`.
        mutating func nextStart(at now: Duration) -> StartAction {
            guard !isStopping, !isStarting else { return .none }
            // One look-up: the child is changed in place through its index.
            guard let name = queue.first, let index = children.index(forKey: name),
                case .queued(let notBefore) = children.values[index].phase
            else {
                return .none
            }
            guard notBefore <= now else { return .wake(at: notBefore) }
            queue.removeFirst()
            let incarnation = children.values[index].incarnations + 1
            children.values[index].incarnations = incarnation
            children.values[index].phase = .starting(incarnation)
            children.values[index].startedAt = now
            launched = name
            return .launch(name, incarnation: incarnation)
        }

        /// Whether ``nextStart(at:)`` would launch a child at `now`.
        func canLaunch(at now: Duration) -> Bool {
            guard !isStopping, !isStarting, let name = queue.first, case .queued(let notBefore) = children[name]?.phase else {
                return false
            }
            return notBefore <= now
        }

        /// The queued children that ``nextStart(at:)`` would launch one after the other at `now` (once the start in
        /// progress, if any, is over), with the incarnation number each would get if their starts all succeed,
        /// after the first `skipping` of them.
        func dueToStart(at now: Duration, skipping: Int = 0) -> some Sequence<(name: String, incarnation: UInt64)> {
            let queue = isStopping ? [] : queue
            return queue.dropFirst(skipping).lazy.map { name -> (name: String, incarnation: UInt64)? in
                guard let child = children[name], case .queued(let notBefore) = child.phase, notBefore <= now else {
                    return nil
                }
                return (name, child.incarnations + 1)
            }.prefix { $0 != nil }.map { $0! }
        }

        /// Incarnation `incarnation` of `name` returned from its `setUp`.
        mutating func childBegan(_ name: String, incarnation: UInt64) {
            guard let index = children.index(forKey: name), children.values[index].begin(incarnation),
                children.values[index].awaitingFirstStart
            else { return }
            children.values[index].awaitingFirstStart = false
            awaitingFirstStart -= 1
        }

        // MARK: Events: exits

        /// Decides what to do about a child's exit on its own.
        ///
        /// - Parameters:
        ///   - name: The child.
        ///   - incarnation: Which incarnation exited; a report about any other is stale and ignored.
        ///   - reason: How it ended.
        ///   - quarantined: Whether it ended because its checkpoint cannot be read.
        ///   - now: The time, as a duration since the run started.
        ///   - random: A draw in `0..<1` for the backoff's jitter.
        mutating func childExited(
            _ name: String,
            incarnation: UInt64,
            reason: ExitReason,
            quarantined: Bool = false,
            at now: Duration,
            random: Double
        ) -> ExitAction {
            guard !isStopping, var child = children[name] else { return .ignore }
            switch child.phase {
            case .starting(let n) where n == incarnation, .running(let n) where n == incarnation: break
            default: return .ignore  // stale, or being stopped: the stop ladder handles it
            }
            stopAwaitingFirstStart(name)
            child.awaitingFirstStart = false  // `child` is written back below
            if quarantined {
                children[name]?.phase = .quarantined
                return .quarantine
            }
            switch child.restart.value {
            case .temporary:
                remove(name)
                return .remove(name)
            case .transient:
                guard reason.isFailure else {
                    children[name]?.phase = .exited
                    return .keep
                }
            case .permanent:
                break
            }

            restartTimes.append(now)
            while let first = restartTimes.first, now - first >= intensity.period {
                restartTimes.removeFirst()
            }
            if restartTimes.count > intensity.maxRestarts {
                children[name]?.phase = .exited
                isStopping = true
                return .escalate
            }

            if now - child.startedAt >= backoff.resetAfter { child.consecutiveRestarts = 0 }
            child.consecutiveRestarts += 1
            child.phase = .exited
            children[name] = child
            let delay = backoff.delay(attempt: child.consecutiveRestarts, random: random)

            let group: [String]
            switch strategy.value {
            case .oneForOne:
                group = [name]
            case .oneForAll:
                group = order.filter { $0 == name || isActiveOrQueued($0) }
            case .restForOne:
                let index = order.firstIndex(of: name) ?? order.count
                group = [name] + order[(index + 1)...].filter { isActiveOrQueued($0) }
            }
            return restart(group, crashed: name, notBefore: now + delay, delay: delay)
        }

        /// Orders the stop of the live members of `group` (in reverse start order) and the removal of its temporary
        /// members; the rest are queued by ``groupStopsFinished()``, in start order, not before `notBefore`.
        private mutating func restart(_ group: [String], crashed: String, notBefore: Duration, delay: Duration)
            -> ExitAction
        {
            if group.count == 1 {
                // The child alone (oneForOne, or no live sibling): nothing to stop, queue it at once.
                children[crashed]?.restarts += 1
                children[crashed]?.phase = .queued(notBefore: notBefore)
                queue.append(crashed)
                return .restartGroup(stop: [], remove: [], restart: group, after: delay)
            }
            var stops: [(name: String, incarnation: UInt64)] = []
            var removals: [String] = []
            for name in group.reversed() where name != crashed {
                guard let phase = children[name]?.phase else { continue }
                queue.removeAll { $0 == name }
                let temporary = children[name]?.restart == .temporary
                switch phase {
                case .starting(let n), .running(let n):
                    children[name]?.phase = .stopping(n)
                    stops.append((name, n))
                    if temporary { removals.append(name) }
                default:
                    // Queued, not started yet: nothing to stop.
                    children[name]?.phase = .stopped
                    if temporary {
                        remove(name)
                        removals.append(name)
                    }
                }
            }
            let restarted = group.filter { !removals.contains($0) }
            for name in restarted { children[name]?.restarts += 1 }
            pendingRestart = (restarted, notBefore)
            return .restartGroup(stop: stops, remove: removals, restart: restarted, after: delay)
        }

        /// The group whose restart waits for its members' stops, so that they are queued in start order.
        private var pendingRestart: (names: [String], notBefore: Duration)?

        /// A stop ladder ordered by ``childExited(_:incarnation:reason:quarantined:at:random:)`` (a group restart)
        /// has finished.
        mutating func groupMemberStopped(_ name: String, incarnation: UInt64) {
            guard children[name]?.phase == .stopping(incarnation) else { return }
            if children[name]?.restart == .temporary {
                remove(name)
                return
            }
            children[name]?.phase = .stopped
        }

        /// Every stop of the group restart has finished: queue the group, in start order.
        mutating func groupStopsFinished() {
            guard let (group, notBefore) = pendingRestart else { return }
            pendingRestart = nil
            guard !isStopping else { return }
            let names = Set(group)
            queue.removeAll { names.contains($0) }
            for name in order where names.contains(name) && children[name] != nil {
                switch children[name]?.phase {
                case .stopped, .exited, .queued:
                    children[name]?.phase = .queued(notBefore: notBefore)
                    queue.append(name)
                default: break
                }
            }
        }

        // MARK: Events: operators

        /// An operator adds a child: it is queued to start after those already queued.
        mutating func startChild(_ name: String, restart: ChildSpec.Restart, at now: Duration) throws(Refusal) {
            guard children[name] == nil else { throw .duplicate }
            add(name, restart: restart)
            children[name]?.phase = .queued(notBefore: now)
            queue.append(name)
        }

        /// An operator terminates a child. Returns the incarnation to stop, if one is live; the child is then
        /// `stopping` until ``stopFinished(_:incarnation:then:)``. A temporary child is removed (OTP), and `true`
        /// is returned in `removed`.
        mutating func terminateChild(_ name: String) throws(Refusal) -> (stop: UInt64?, removed: Bool) {
            guard let child = children[name] else { throw .unknown }
            stopAwaitingFirstStart(name)
            let temporary = child.restart == .temporary
            switch child.phase {
            case .starting(let n), .running(let n):
                children[name]?.phase = .stopping(n)
                return (n, temporary)
            case .stopping:
                throw .restarting
            case .queued:
                queue.removeAll { $0 == name }
                fallthrough
            default:
                if temporary {
                    remove(name)
                    return (nil, true)
                }
                children[name]?.phase = .stopped
                return (nil, false)
            }
        }

        /// An operator restarts a child. A running child is stopped first (Troupe's extension of OTP's
        /// `restart_child`, which accepts only terminated children): the incarnation to stop is returned, and the
        /// child is queued when ``stopFinished(_:incarnation:then:)`` reports it stopped. A child waiting to start
        /// or being stopped is refused with `restarting`.
        mutating func restartChild(_ name: String, at now: Duration) throws(Refusal) -> UInt64? {
            guard let child = children[name] else { throw .unknown }
            switch child.phase {
            case .queued, .stopping:
                throw .restarting
            case .starting(let n), .running(let n):
                children[name]?.phase = .stopping(n)
                children[name]?.restarts += 1
                return n
            case .idle, .stopped, .exited, .quarantined:
                // A child that is not running is started, not restarted (OTP's restart_child of a terminated
                // child): an operator's unpause or a start after a quarantine is no restart.
                children[name]?.phase = .queued(notBefore: now)
                queue.append(name)
                return nil
            }
        }

        /// An operator deletes a stopped child.
        mutating func deleteChild(_ name: String) throws(Refusal) {
            guard let child = children[name] else { throw .unknown }
            switch child.phase {
            case .queued: throw .restarting
            case .starting, .running, .stopping: throw .running
            default: remove(name)
            }
        }

        /// A stop ladder ordered by an operator's request has finished.
        mutating func stopFinished(_ name: String, incarnation: UInt64, then next: AfterStop) {
            guard children[name]?.phase == .stopping(incarnation) else { return }
            switch next {
            case .remove:
                remove(name)
            case .keep:
                children[name]?.phase = .stopped
            case .restart(let notBefore):
                if isStopping {
                    children[name]?.phase = .stopped
                } else {
                    children[name]?.phase = .queued(notBefore: notBefore)
                    queue.append(name)
                }
            }
        }

        private mutating func remove(_ name: String) {
            stopAwaitingFirstStart(name)
            children[name] = nil
            order.removeAll { $0 == name }
            queue.removeAll { $0 == name }
        }
    }
}
