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
            let name: String
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
        /// The children's slots, in start order.
        private var orderSlots: [Int] = []
        /// Children in start order.
        var order: [String] { orderSlots.map { slots[$0]!.name } }
        /// The children, each in a slot of its own for its life (a removed child's slot is free for the next one):
        /// the start path goes from the queue to the child without hashing its name, which a start of 100,000
        /// children did four times each, with a cache miss in a table of 100,000 entries every time.
        private var slots: [Child?] = []
        private var freeSlots: [Int] = []
        private var slotOf: [String: Int] = [:]
        /// The slots of the children waiting to start, in the order they are to start.
        private(set) var queue: Deque<Int> = []
        /// When the restarts inside the current intensity window happened.
        private var restartTimes: Deque<Duration> = []
        /// Whether the supervisor is shutting down or escalating: exits are then expected and not acted on.
        private(set) var isStopping = false
        /// The slot of the child launched last: the only one that can be `starting`.
        private var launched: Int?
        /// How many children are ``Child/awaitingFirstStart`` (a flag on each child, not a set of names: a start
        /// of 100,000 children would hash each name twice more).
        private var awaitingFirstStart = 0

        init(strategy: RestartStrategy, intensity: RestartIntensity, backoff: Backoff) {
            self.strategy = strategy
            self.intensity = intensity
            self.backoff = backoff
        }

        // MARK: Reading

        func phase(of name: String) -> Phase? { self[name]?.phase }

        func child(_ name: String) -> Child? { self[name] }

        /// The slot of the child named `name`: a number of its own while it exists, which a removed child's
        /// successor may take.
        func slot(of name: String) -> Int? { slotOf[name] }

        /// The slot of the child launched last (see ``nextStart(at:)``), while it exists.
        var launchedSlot: Int? { launched }

        /// The child named `name`, read or changed in its slot.
        private subscript(name: String) -> Child? {
            get { slotOf[name].flatMap { slots[$0] } }
            _modify {
                guard let slot = slotOf[name] else {
                    var none: Child?
                    yield &none
                    precondition(none == nil, "child '\(name)' is set without being added")
                    return
                }
                yield &slots[slot]
                precondition(slots[slot] != nil, "child '\(name)' is cleared without being removed")
            }
        }

        /// Whether a child occupies a live incarnation or a place in the start queue.
        private func isActiveOrQueued(_ name: String) -> Bool {
            switch self[name]?.phase {
            case .queued, .starting, .running, .stopping: true
            default: false
            }
        }

        /// Children with a live incarnation that is not being stopped, as OTP's `count_children` counts `active`:
        /// a child waiting out its restart delay is not active.
        var activeCount: Int {
            slots.count { child in
                switch child?.phase {
                case .starting, .running: true
                default: false
                }
            }
        }

        /// Whether a child is in its `setUp`. Only the child launched last can be: nothing is launched while
        /// another starts.
        var isStarting: Bool {
            guard let launched, case .starting = slots[launched]?.phase else { return false }
            return true
        }

        /// Whether the supervisor's own start is over: every child queued by ``begin(at:)`` has returned from its
        /// first `setUp` or ended (a child that failed at start and waits out a restart counts as started).
        var hasStarted: Bool { awaitingFirstStart == 0 }

        /// Changes every child in place, slot by slot.
        private mutating func changeEveryChild(_ change: (inout Child) -> Void) {
            for slot in slots.indices where slots[slot] != nil {
                change(&slots[slot]!)
            }
        }

        /// Marks `name` as no longer awaited by the supervisor's start.
        private mutating func stopAwaitingFirstStart(_ name: String) {
            guard awaitingFirstStart > 0, self[name]?.awaitingFirstStart == true else { return }
            self[name]?.awaitingFirstStart = false
            awaitingFirstStart -= 1
        }

        /// How many restarts fall within the intensity window ending `now`.
        func restartsInWindow(at now: Duration) -> Int {
            restartTimes.count { now - $0 < intensity.period }
        }

        // MARK: Events: the supervisor's own life

        /// Makes room for `count` children, so that a large tree is built without rehashing.
        mutating func reserveCapacity(_ count: Int) {
            orderSlots.reserveCapacity(count)
            slots.reserveCapacity(count)
            slotOf.reserveCapacity(count)
        }

        /// Adds a child at the end of the start order, idle. Returns its slot.
        @discardableResult
        mutating func add(_ name: String, restart: ChildSpec.Restart) -> Int {
            precondition(slotOf[name] == nil, "child '\(name)' added twice")
            let child = Child(name: name, restart: restart)
            let slot: Int
            if let free = freeSlots.popLast() {
                slot = free
                slots[slot] = child
            } else {
                slot = slots.count
                slots.append(child)
            }
            slotOf[name] = slot
            orderSlots.append(slot)
            return slot
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
            queue.append(contentsOf: orderSlots)
            awaitingFirstStart = orderSlots.count
        }

        /// The supervisor is shutting down: later exits are ignored, nothing more starts. Returns the live
        /// children to stop, in reverse start order; queued ones become stopped at once.
        mutating func beginStopping() -> [(name: String, incarnation: UInt64)] {
            isStopping = true
            if awaitingFirstStart > 0 {
                changeEveryChild { $0.awaitingFirstStart = false }
                awaitingFirstStart = 0
            }
            for slot in queue { slots[slot]!.phase = .stopped }
            queue.removeAll()
            var live: [(String, UInt64)] = []
            for slot in orderSlots.reversed() {
                switch slots[slot]!.phase {
                case .starting(let n), .running(let n):
                    slots[slot]!.phase = .stopping(n)
                    live.append((slots[slot]!.name, n))
                default: break
                }
            }
            return live
        }

        // MARK: Events: starting

        /// What to start next, if anything, at `now`.
        mutating func nextStart(at now: Duration) -> StartAction {
            guard !isStopping, !isStarting else { return .none }
            guard let slot = queue.first, case .queued(let notBefore) = slots[slot]!.phase else { return .none }
            guard notBefore <= now else { return .wake(at: notBefore) }
            queue.removeFirst()
            let incarnation = slots[slot]!.incarnations + 1
            slots[slot]!.incarnations = incarnation
            slots[slot]!.phase = .starting(incarnation)
            slots[slot]!.startedAt = now
            launched = slot
            return .launch(slots[slot]!.name, incarnation: incarnation)
        }

        /// Whether ``nextStart(at:)`` would launch a child at `now`.
        func canLaunch(at now: Duration) -> Bool {
            guard !isStopping, !isStarting, let slot = queue.first, case .queued(let notBefore) = slots[slot]!.phase else {
                return false
            }
            return notBefore <= now
        }

        /// The queued children that ``nextStart(at:)`` would launch one after the other at `now` (once the start in
        /// progress, if any, is over), with the incarnation number each would get if their starts all succeed,
        /// after the first `skipping` of them.
        func dueToStart(at now: Duration, skipping: Int = 0) -> some Sequence<(name: String, incarnation: UInt64)> {
            let queue = isStopping ? [] : queue
            return queue.dropFirst(skipping).lazy.map { slot -> (name: String, incarnation: UInt64)? in
                guard let child = slots[slot], case .queued(let notBefore) = child.phase, notBefore <= now else {
                    return nil
                }
                return (child.name, child.incarnations + 1)
            }.prefix { $0 != nil }.map { $0! }
        }

        /// Incarnation `incarnation` of `name` returned from its `setUp`.
        mutating func childBegan(_ name: String, incarnation: UInt64) {
            // The child launched last, found without a look-up (unless an operator's request came between).
            guard let slot = launched.flatMap({ slots[$0]?.name == name ? $0 : nil }) ?? slotOf[name],
                slots[slot]!.begin(incarnation), slots[slot]!.awaitingFirstStart
            else { return }
            slots[slot]!.awaitingFirstStart = false
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
            guard !isStopping, var child = self[name] else { return .ignore }
            switch child.phase {
            case .starting(let n) where n == incarnation, .running(let n) where n == incarnation: break
            default: return .ignore  // stale, or being stopped: the stop ladder handles it
            }
            stopAwaitingFirstStart(name)
            child.awaitingFirstStart = false  // `child` is written back below
            if quarantined {
                self[name]?.phase = .quarantined
                return .quarantine
            }
            switch child.restart.value {
            case .temporary:
                remove(name)
                return .remove(name)
            case .transient:
                guard reason.isFailure else {
                    self[name]?.phase = .exited
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
                self[name]?.phase = .exited
                isStopping = true
                return .escalate
            }

            if now - child.startedAt >= backoff.resetAfter { child.consecutiveRestarts = 0 }
            child.consecutiveRestarts += 1
            child.phase = .exited
            self[name] = child
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
                self[crashed]?.restarts += 1
                self[crashed]?.phase = .queued(notBefore: notBefore)
                queue.append(slotOf[crashed]!)
                return .restartGroup(stop: [], remove: [], restart: group, after: delay)
            }
            var stops: [(name: String, incarnation: UInt64)] = []
            var removals: [String] = []
            for name in group.reversed() where name != crashed {
                guard let slot = slotOf[name], let phase = slots[slot]?.phase else { continue }
                queue.removeAll { $0 == slot }
                let temporary = self[name]?.restart == .temporary
                switch phase {
                case .starting(let n), .running(let n):
                    self[name]?.phase = .stopping(n)
                    stops.append((name, n))
                    if temporary { removals.append(name) }
                default:
                    // Queued, not started yet: nothing to stop.
                    self[name]?.phase = .stopped
                    if temporary {
                        remove(name)
                        removals.append(name)
                    }
                }
            }
            let restarted = group.filter { !removals.contains($0) }
            for name in restarted { self[name]?.restarts += 1 }
            pendingRestart = (restarted, notBefore)
            return .restartGroup(stop: stops, remove: removals, restart: restarted, after: delay)
        }

        /// The group whose restart waits for its members' stops, so that they are queued in start order.
        private var pendingRestart: (names: [String], notBefore: Duration)?

        /// A stop ladder ordered by ``childExited(_:incarnation:reason:quarantined:at:random:)`` (a group restart)
        /// has finished.
        mutating func groupMemberStopped(_ name: String, incarnation: UInt64) {
            guard self[name]?.phase == .stopping(incarnation) else { return }
            if self[name]?.restart == .temporary {
                remove(name)
                return
            }
            self[name]?.phase = .stopped
        }

        /// Every stop of the group restart has finished: queue the group, in start order.
        mutating func groupStopsFinished() {
            guard let (group, notBefore) = pendingRestart else { return }
            pendingRestart = nil
            guard !isStopping else { return }
            let members = Set(group.compactMap { slotOf[$0] })
            queue.removeAll { members.contains($0) }
            for slot in orderSlots where members.contains(slot) {
                switch slots[slot]!.phase {
                case .stopped, .exited, .queued:
                    slots[slot]!.phase = .queued(notBefore: notBefore)
                    queue.append(slot)
                default: break
                }
            }
        }

        // MARK: Events: operators

        /// An operator adds a child: it is queued to start after those already queued.
        mutating func startChild(_ name: String, restart: ChildSpec.Restart, at now: Duration) throws(Refusal) {
            guard slotOf[name] == nil else { throw .duplicate }
            add(name, restart: restart)
            self[name]?.phase = .queued(notBefore: now)
            queue.append(slotOf[name]!)
        }

        /// An operator terminates a child. Returns the incarnation to stop, if one is live; the child is then
        /// `stopping` until ``stopFinished(_:incarnation:then:)``. A temporary child is removed (OTP), and `true`
        /// is returned in `removed`.
        mutating func terminateChild(_ name: String) throws(Refusal) -> (stop: UInt64?, removed: Bool) {
            guard let child = self[name] else { throw .unknown }
            stopAwaitingFirstStart(name)
            let temporary = child.restart == .temporary
            switch child.phase {
            case .starting(let n), .running(let n):
                self[name]?.phase = .stopping(n)
                return (n, temporary)
            case .stopping:
                throw .restarting
            case .queued:
                let slot = slotOf[name]
                queue.removeAll { $0 == slot }
                fallthrough
            default:
                if temporary {
                    remove(name)
                    return (nil, true)
                }
                self[name]?.phase = .stopped
                return (nil, false)
            }
        }

        /// An operator restarts a child. A running child is stopped first (Troupe's extension of OTP's
        /// `restart_child`, which accepts only terminated children): the incarnation to stop is returned, and the
        /// child is queued when ``stopFinished(_:incarnation:then:)`` reports it stopped. A child waiting to start
        /// or being stopped is refused with `restarting`.
        mutating func restartChild(_ name: String, at now: Duration) throws(Refusal) -> UInt64? {
            guard let child = self[name] else { throw .unknown }
            switch child.phase {
            case .queued, .stopping:
                throw .restarting
            case .starting(let n), .running(let n):
                self[name]?.phase = .stopping(n)
                self[name]?.restarts += 1
                return n
            case .idle, .stopped, .exited, .quarantined:
                // A child that is not running is started, not restarted (OTP's restart_child of a terminated
                // child): an operator's unpause or a start after a quarantine is no restart.
                self[name]?.phase = .queued(notBefore: now)
                queue.append(slotOf[name]!)
                return nil
            }
        }

        /// An operator deletes a stopped child.
        mutating func deleteChild(_ name: String) throws(Refusal) {
            guard let child = self[name] else { throw .unknown }
            switch child.phase {
            case .queued: throw .restarting
            case .starting, .running, .stopping: throw .running
            default: remove(name)
            }
        }

        /// A stop ladder ordered by an operator's request has finished.
        mutating func stopFinished(_ name: String, incarnation: UInt64, then next: AfterStop) {
            guard self[name]?.phase == .stopping(incarnation) else { return }
            switch next {
            case .remove:
                remove(name)
            case .keep:
                self[name]?.phase = .stopped
            case .restart(let notBefore):
                if isStopping {
                    self[name]?.phase = .stopped
                } else {
                    self[name]?.phase = .queued(notBefore: notBefore)
                    queue.append(slotOf[name]!)
                }
            }
        }

        private mutating func remove(_ name: String) {
            stopAwaitingFirstStart(name)
            guard let slot = slotOf.removeValue(forKey: name) else { return }
            slots[slot] = nil
            freeSlots.append(slot)
            orderSlots.removeAll { $0 == slot }
            queue.removeAll { $0 == slot }
            if launched == slot { launched = nil }
        }
    }
}
