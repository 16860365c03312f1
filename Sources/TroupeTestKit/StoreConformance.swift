import FoundationEssentials
import Logging
public import Troupe

/// The behaviour every store (`OperatorStore`: the engine's contract, the read model, the control queue) must have, as one suite of checks run against each backend.
///
/// Two stores that each pass their own tests can still disagree (one reused message ids, the other did not); this
/// suite is the definition of a store. A backend's tests run every check in ``checks`` against a ``Backend``:
///
/// ```swift
/// @Test(arguments: StoreConformance.checks)
/// func conformance(check: StoreConformance.Check) async throws {
///     try await check.run(on: .inMemory)
/// }
/// ```
///
/// A failed check throws ``Failure`` saying what differed.
public enum StoreConformance {
    /// A store opened on a backend's data, with the read-side operations the checks need.
    public struct Handle: Sendable {
        /// The store.
        public var store: any OperatorStore
        /// The durable messages of a run not yet committed by their recipients, in delivery order.
        public var pendingMessages: @Sendable (RunID) async throws -> [StoredMessage]
        /// The retained checkpoints of an agent, oldest first.
        public var checkpoints: @Sendable (AgentID) async throws -> [Checkpoint]
        /// The dead letters of a run, oldest first.
        public var deadLetters: @Sendable (RunID) async throws -> [DeadLetter]
        /// Closes the store (nothing for stores that hold no resources).
        public var close: @Sendable () async -> Void

        /// Creates a handle.
        public init(
            store: any OperatorStore,
            pendingMessages: @escaping @Sendable (RunID) async throws -> [StoredMessage],
            checkpoints: @escaping @Sendable (AgentID) async throws -> [Checkpoint],
            deadLetters: @escaping @Sendable (RunID) async throws -> [DeadLetter],
            close: @escaping @Sendable () async -> Void = {}
        ) {
            self.store = store
            self.pendingMessages = pendingMessages
            self.checkpoints = checkpoints
            self.deadLetters = deadLetters
            self.close = close
        }
    }

    /// A kind of store under test: makes fresh, empty data and opens stores on it.
    public struct Backend: Sendable, CustomStringConvertible {
        /// The backend's name, for test output.
        public var name: String
        /// The retention every store this backend opens is configured with.
        public var retention: Int
        /// Makes fresh data and returns a function that opens a store on it. Opening twice gives a second store
        /// instance on the same data where the backend can (a file, a server), or the same instance (memory).
        public var fresh: @Sendable () async throws -> @Sendable () async throws -> Handle

        /// Creates a backend.
        public init(
            name: String,
            retention: Int = 3,
            fresh: @escaping @Sendable () async throws -> @Sendable () async throws -> Handle
        ) {
            self.name = name
            self.retention = retention
            self.fresh = fresh
        }

        public var description: String { name }

        /// `InMemoryCheckpointStore`, opened as the same instance each time.
        public static let inMemory = Backend(name: "in-memory") {
            let store = InMemoryCheckpointStore(retention: 3, recordsEvents: true)
            let handle = Handle(
                store: store,
                pendingMessages: { store.pendingMessages(of: $0) },
                checkpoints: { store.checkpoints(of: $0) },
                deadLetters: { run in store.deadLetters.filter { $0.agent.run == run } }
            )
            return { handle }
        }
    }

    /// One check of the suite.
    public struct Check: Sendable, CustomStringConvertible {
        /// What the check pins, as a sentence.
        public var name: String
        let body: @Sendable (Backend) async throws -> Void

        /// Runs the check against `backend`.
        ///
        /// - Throws: ``Failure`` if the store does not behave as specified, or the store's own errors.
        public func run(on backend: Backend) async throws { try await body(backend) }

        public var description: String { name }
    }

    /// A difference between what a store did and what the contract says.
    public struct Failure: Error, CustomStringConvertible {
        /// What differed.
        public var description: String
    }

    /// Every check of the suite.
    public static let checks: [Check] = [
        Check(name: "message ids are never reused, even after the inbox drains", body: idsAreNeverReused),
        Check(name: "ids stay unique across a resume on a new store instance", body: idsStayUniqueAcrossAResume),
        Check(name: "pending messages are those an earlier owner accepted, returned once", body: pendingOnce),
        Check(name: "a message stored after a resume is never pending, whatever its id", body: noPendingAfterResume),
        Check(name: "a batch claim gives each agent what its own claim would, in order", body: batchClaims),
        Check(name: "recorded steps are returned by claims and deleted by the commit of their unit", body: steps),
        Check(name: "a dead letter removes its message and its recorded steps", body: deadLetterSteps),
        Check(name: "a commit from a replaced epoch is rejected and applies nothing", body: fencing),
        Check(name: "a commit after the run was resumed elsewhere is rejected", body: fencingAcrossInstances),
        Check(name: "claims return the latest checkpoint and retention keeps the newest", body: retention),
        Check(name: "a committed state, its consumed messages and its sent messages apply together", body: atomicity),
        Check(name: "epochs continue across a resume, and the latest checkpoint is found", body: epochsContinue),
        Check(name: "a resumed run handles what the dead owner accepted, once", body: resumeHandlesAccepted),
        Check(name: "each durable message's step is its own: three messages make three calls", body: stepsPerMessage),
        Check(name: "a step recorded before a crash is replayed, not called again, and gone after the commit", body: stepReplay),
        Check(name: "a durable message keeps its sender's trace context across a resume", body: traceKept),
    ] + operatorChecks

    // MARK: Helpers

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws(Failure) {
        if !condition { throw Failure(description: message()) }
    }

    static func expectValue<T>(_ value: T?, _ message: @autoclosure () -> String) throws(Failure) -> T {
        guard let value else { throw Failure(description: message()) }
        return value
    }

    static func fenced(_ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return false
        } catch let error as TroupeError {
            return error.code == .fenced || error.code == .leaseHeld || error.code == .notRunning
        } catch {
            return false
        }
    }

    static let run: RunID = "run-conformance"
    static let agent = AgentID(run: run, name: "a")
    static let other = AgentID(run: run, name: "b")
    static let record = RunRecord(id: run, blueprint: "conformance", agents: ["a", "b"])

    /// Opens a store on fresh data, attaches the run, runs `body`, then detaches and closes.
    static func attached(_ backend: Backend, _ body: (Handle, any CheckpointStore) async throws -> Void) async throws {
        let handle = try await backend.fresh()()
        _ = try await handle.store.attach(record)
        do {
            try await body(handle, handle.store)
        } catch {
            await handle.store.detach(run, outcome: .failed, error: nil)
            await handle.close()
            throw error
        }
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func send(_ store: any CheckpointStore, to recipient: String, _ text: String) async throws -> Int64 {
        try await store.commit(Commit(run: run, agent: nil, epoch: 0, sent: [SentMessage(to: recipient, payload: Array(text.utf8))]))[0]
    }

    static func claim(_ store: any CheckpointStore, _ agent: AgentID = agent, incarnation: UInt64 = 1) async throws -> Claim {
        try await store.claim(agent, type: "Conformance", durability: .durable, incarnation: incarnation)
    }

    static func checkpoint(_ agent: AgentID, epoch: UInt64, sequence: UInt64, _ text: String) -> Checkpoint {
        Checkpoint(agent: agent, epoch: epoch, sequence: sequence, stateVersion: 1, state: Array(text.utf8))
    }

    // MARK: Engine-level checks: a run of durable agents on the store

    /// Adds numbers; answers its total; calls a recorded "service" in a durable step for `.charge`, crashing once
    /// after the step when told to.
    struct Ledger: HandlerAgent {
        struct State: AgentState { var total = 0 }
        enum Message: Codable, Sendable {
            case add(Int)
            case charge(Int, crashOnce: Bool)
            case total(Reply<Int>)
        }
        struct Crash: Error {}
        let calls: Recorder<String>

        func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
            switch message {
            case .add(let n):
                state.total += n
            case .charge(let amount, let crashOnce):
                let receipt = try await context.step("charge") { step -> Int in
                    calls.record("\(step.idempotencyKey)=\(amount)")
                    return amount
                }
                if crashOnce, context.deliveryAttempt == 1 { throw Crash() }
                state.total += receipt
            case .total(let reply):
                reply(state.total)
            }
        }
    }

    static let quiet: Logger = {
        var logger = Logger(label: "troupe.conformance", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }()

    static func ledgerRun(_ store: any CheckpointStore, calls: Recorder<String> = Recorder()) throws -> Run {
        try Run(
            Blueprint("conformance", durability: .durable) { Child("a", Ledger(calls: calls)) },
            id: run,
            configuration: Run.Configuration(store: store, logger: quiet)
        )
    }

    static func total(_ run: Run) async throws -> Int {
        try await run.call("a", timeout: .seconds(20)) { Ledger.Message.total($0) }
    }

    static func epochsContinue(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        _ = try await handle.store.attach(record)
        let first = try await claim(handle.store)
        let second = try await claim(handle.store, incarnation: 2)
        _ = try await handle.store.commit(
            Commit(run: run, agent: agent, epoch: second.epoch, checkpoint: checkpoint(agent, epoch: second.epoch, sequence: 1, "kept"))
        )
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
        handle = try await open()
        _ = try await handle.store.attach(record)
        let resumed = try await claim(handle.store)
        try expect(resumed.epoch > second.epoch && second.epoch > first.epoch, "epochs \(first.epoch), \(second.epoch), then \(resumed.epoch) after the resume")
        try expect(resumed.latest?.state == Array("kept".utf8), "the resumed claim found \(String(describing: resumed.latest))")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func resumeHandlesAccepted(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        let first = try ledgerRun(handle.store)
        try await withRunning(first) {
            try await first.send(Ledger.Message.add(5), to: "a")
            _ = try await total(first)
        }
        // Accepted by an owner that died before handling them.
        _ = try await handle.store.attach(record)
        let payloads = try [Ledger.Message.add(10), .add(20)].map { Array(try JSONEncoder().encode($0)) }
        _ = try await handle.store.commit(Commit(run: run, agent: nil, epoch: 0, sent: payloads.map { SentMessage(to: "a", payload: $0) }))
        await handle.store.detach(run, outcome: .failed, error: "killed")
        await handle.close()

        handle = try await open()
        let second = try ledgerRun(handle.store)
        let sum = try await withRunning(second) {
            try await second.send(Ledger.Message.add(100), to: "a")
            return try await total(second)
        }
        try expect(second.isResumed == true, "the second run was not a resume")
        try expect(sum == 135, "total \(sum) after the resume, expected 135 (5 + 10 + 20 + 100, each once)")
        let left = try await handle.pendingMessages(run)
        try expect(left.isEmpty, "messages left in the inbox: \(left.map(\.id))")
        await handle.close()
    }

    static func stepsPerMessage(_ backend: Backend) async throws {
        let handle = try await backend.fresh()()
        let calls = Recorder<String>()
        let ledger = try ledgerRun(handle.store, calls: calls)
        let sum = try await withRunning(ledger) {
            // One after the other, each committed before the next is sent: the inbox drains between them.
            for amount in [1, 2, 3] {
                try await ledger.send(Ledger.Message.charge(amount, crashOnce: false), to: "a")
                _ = try await total(ledger)
            }
            return try await total(ledger)
        }
        try expect(sum == 6, "total \(sum): a message replayed another message's recorded result")
        try expect(calls.values.count == 3, "\(calls.values.count) calls for three messages: \(calls.values)")
        let keys = calls.values.map { $0.split(separator: "=")[0] }
        try expect(Set(keys).count == 3, "idempotency keys repeat across messages: \(calls.values)")
        await handle.close()
    }

    static func stepReplay(_ backend: Backend) async throws {
        let handle = try await backend.fresh()()
        let calls = Recorder<String>()
        let ledger = try ledgerRun(handle.store, calls: calls)
        let sum = try await withRunning(ledger) {
            try await ledger.send(Ledger.Message.charge(5, crashOnce: true), to: "a")
            return try await total(ledger)
        }
        try expect(sum == 5, "total \(sum) after the crash and replay, expected 5")
        try expect(calls.values.count == 1, "the step was called \(calls.values.count) times: \(calls.values)")
        // The unit committed: a new incarnation finds no recorded step.
        let record = RunRecord(id: run, blueprint: "conformance", agents: ["a"])
        _ = try await handle.store.attach(record)
        let claim = try await claim(handle.store, incarnation: 9)
        try expect(claim.steps.isEmpty, "steps survived their unit's commit: \(claim.steps)")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    // MARK: Checks

    static func idsAreNeverReused(_ backend: Backend) async throws {
        try await attached(backend) { handle, store in
            let claim = try await claim(store)
            var seen: Set<Int64> = []
            for round in 0..<5 {
                let id = try await send(store, to: "a", "m\(round)")
                try expect(!seen.contains(id), "id \(id) was handed out twice (round \(round)): \(seen.sorted())")
                seen.insert(id)
                // Drain the inbox: the largest id is deleted each time.
                _ = try await store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, consumed: [id]))
            }
        }
    }

    static func idsStayUniqueAcrossAResume(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var first = try await open()
        _ = try await first.store.attach(record)
        let claim = try await claim(first.store)
        let a = try await send(first.store, to: "a", "one")
        _ = try await first.store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, consumed: [a]))
        await first.store.detach(run, outcome: .stopped, error: nil)
        await first.close()
        first = try await open()
        _ = try await first.store.attach(record)
        let b = try await send(first.store, to: "a", "two")
        try expect(b != a, "id \(a) was reused after a resume")
        await first.store.detach(run, outcome: .stopped, error: nil)
        await first.close()
    }

    static func pendingOnce(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        _ = try await handle.store.attach(record)
        let firstClaim = try await claim(handle.store)
        try expect(firstClaim.pending.isEmpty, "a new run's first claim returned pending messages")
        let early = try await send(handle.store, to: "a", "early")
        // A restart within the same owner: the message was delivered live, so it is not pending.
        let restart = try await claim(handle.store, incarnation: 2)
        try expect(restart.pending.isEmpty, "a message accepted by the current owner came back as pending")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()

        handle = try await open()
        _ = try await handle.store.attach(record)
        let claims = try await claim(handle.store, incarnation: 1)
        try expect(claims.pending.map(\.id) == [early], "expected [\(early)] pending after the resume, got \(claims.pending.map(\.id))")
        try expect(claims.pending.first?.payload == Array("early".utf8), "the pending message's payload changed")
        let again = try await claim(handle.store, incarnation: 2)
        try expect(again.pending.isEmpty, "a pending message was returned twice: \(again.pending.map(\.id))")
        let other = try await claim(handle.store, other)
        try expect(other.pending.isEmpty, "another agent's message was returned to 'b'")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func batchClaims(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        _ = try await handle.store.attach(record)
        let first = try await claim(handle.store)
        _ = try await handle.store.commit(
            Commit(run: run, agent: agent, epoch: first.epoch, checkpoint: checkpoint(agent, epoch: first.epoch, sequence: 1, "a1"))
        )
        let second = try await handle.store.commit(
            Commit(run: run, agent: agent, epoch: first.epoch, checkpoint: checkpoint(agent, epoch: first.epoch, sequence: 2, "a2"))
        )
        try expect(second.isEmpty, "a commit that sent nothing returned message ids \(second)")
        let toB = try await send(handle.store, to: "b", "for b")
        let toA = try await send(handle.store, to: "a", "for a")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()

        handle = try await open()
        _ = try await handle.store.attach(record)
        let requests = [other, agent].map { ClaimRequest(agent: $0, type: "Conformance", durability: .durable, incarnation: 1) }
        let claims = try await handle.store.claim(requests)
        try expect(claims.count == 2, "a batch claim of 2 agents returned \(claims.count) claims")
        let (b, a) = (claims[0], claims[1])
        try expect(a.epoch > first.epoch, "a batch claim did not give 'a' a new epoch: \(a.epoch) after \(first.epoch)")
        try expect(a.latest?.sequence == 2 && a.latest?.state == Array("a2".utf8), "'a' did not get its latest checkpoint from a batch claim")
        try expect(b.latest == nil, "'b' has no checkpoint, but a batch claim returned #\(b.latest?.sequence ?? 0)")
        try expect(a.pending.map(\.id) == [toA], "expected [\(toA)] pending for 'a', got \(a.pending.map(\.id))")
        try expect(b.pending.map(\.id) == [toB], "expected [\(toB)] pending for 'b', got \(b.pending.map(\.id))")
        let again = try await handle.store.claim(requests)
        try expect(again.allSatisfy(\.pending.isEmpty), "a second batch claim returned the pending messages again")
        try expect(again[1].epoch > a.epoch, "a second batch claim did not advance 'a''s epoch")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func noPendingAfterResume(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        _ = try await handle.store.attach(record)
        _ = try await claim(handle.store)
        let old = try await send(handle.store, to: "a", "old")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()

        handle = try await open()
        _ = try await handle.store.attach(record)
        let claim = try await claim(handle.store)
        try expect(claim.pending.map(\.id) == [old], "expected [\(old)] pending, got \(claim.pending.map(\.id))")
        // The resumed agent commits the old message: the inbox drains. A message to 'b' is stored afterwards.
        _ = try await handle.store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, consumed: [old]))
        let fresh = try await send(handle.store, to: "b", "new")
        let b = try await Self.claim(handle.store, other)
        try expect(b.pending.isEmpty, "message \(fresh), stored after the resume, was returned as pending: it is handled twice")
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }

    static func steps(_ backend: Backend) async throws {
        try await attached(backend) { handle, store in
            var claim = try await claim(store)
            let id = try await send(store, to: "a", "m")
            try await store.recordStep(agent, epoch: claim.epoch, key: "m\(id)/get#1", result: [1])
            try await store.recordStep(agent, epoch: claim.epoch, key: "c0/poll#1", result: [2])
            claim = try await Self.claim(store, incarnation: 2)
            try expect(claim.steps == ["m\(id)/get#1": [1], "c0/poll#1": [2]], "claims returned steps \(claim.steps)")
            _ = try await store.commit(
                Commit(
                    run: run,
                    agent: agent,
                    epoch: claim.epoch,
                    checkpoint: checkpoint(agent, epoch: claim.epoch, sequence: 1, "s"),
                    consumed: [id],
                    finishedSteps: ["m\(id)"]
                )
            )
            claim = try await Self.claim(store, incarnation: 3)
            try expect(claim.steps == ["c0/poll#1": [2]], "the commit of m\(id) left steps \(claim.steps)")
            _ = try await store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, finishedSteps: ["c0"]))
            claim = try await Self.claim(store, incarnation: 4)
            try expect(claim.steps.isEmpty, "the commit of c0 left steps \(claim.steps)")
            let stale = await fenced { try await store.recordStep(agent, epoch: 1, key: "c1/x#1", result: [3]) }
            try expect(stale, "a step from a replaced epoch was recorded")
            // A step recorded by the same incarnation that finishes it (its claim found none) goes with the commit.
            try await store.recordStep(agent, epoch: claim.epoch, key: "c1/x#1", result: [4])
            _ = try await store.commit(Commit(run: run, agent: agent, epoch: claim.epoch, finishedSteps: ["c1"]))
            claim = try await Self.claim(store, incarnation: 5)
            try expect(claim.steps.isEmpty, "the commit of c1, in the incarnation that recorded its step, left steps \(claim.steps)")
        }
    }

    static func deadLetterSteps(_ backend: Backend) async throws {
        try await attached(backend) { handle, store in
            var claim = try await claim(store)
            let poison = try await send(store, to: "a", "poison")
            let next = try await send(store, to: "a", "next")
            try await store.recordStep(agent, epoch: claim.epoch, key: "m\(poison)/get#1", result: [9])
            try await store.recordStep(agent, epoch: claim.epoch, key: "m\(next)/get#1", result: [8])
            try await store.deadLetter(DeadLetter(agent: agent, message: Array("poison".utf8), error: "boom", failures: 3, messageID: poison))
            let pending = try await handle.pendingMessages(run).map(\.id)
            try expect(pending == [next], "after the dead letter the inbox holds \(pending), expected [\(next)]")
            let letters = try await handle.deadLetters(run)
            try expect(letters.count == 1 && letters[0].error == "boom" && letters[0].message == Array("poison".utf8), "dead letters: \(letters)")
            claim = try await Self.claim(store, incarnation: 2)
            try expect(claim.steps == ["m\(next)/get#1": [8]], "the dead letter's steps survived it: \(claim.steps)")
        }
    }

    static func fencing(_ backend: Backend) async throws {
        try await attached(backend) { handle, store in
            let old = try await claim(store)
            let current = try await claim(store, incarnation: 2)
            try expect(current.epoch > old.epoch, "epochs did not grow: \(old.epoch) then \(current.epoch)")
            let id = try await send(store, to: "a", "m")
            let rejected = await fenced {
                _ = try await store.commit(
                    Commit(
                        run: run,
                        agent: agent,
                        epoch: old.epoch,
                        checkpoint: checkpoint(agent, epoch: old.epoch, sequence: 1, "stale"),
                        consumed: [id],
                        sent: [SentMessage(to: "b", payload: [1])]
                    )
                )
            }
            try expect(rejected, "a commit from epoch \(old.epoch) was accepted while \(current.epoch) is current")
            try expect(try await handle.checkpoints(agent).isEmpty, "the fenced commit's checkpoint was written")
            let pending = try await handle.pendingMessages(run).map(\.id)
            try expect(pending == [id], "the fenced commit changed the inbox: \(pending)")
        }
    }

    static func fencingAcrossInstances(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        let first = try await open()
        _ = try await first.store.attach(record)
        let claim = try await claim(first.store)
        await first.store.detach(run, outcome: .stopped, error: nil)
        let second = try await open()
        let resumed = try await second.store.attach(record)
        try expect(resumed, "attach did not report a known run as resumed")
        _ = try await Self.claim(second.store)
        let rejected = await fenced {
            _ = try await first.store.commit(
                Commit(run: run, agent: agent, epoch: claim.epoch, checkpoint: checkpoint(agent, epoch: claim.epoch, sequence: 1, "zombie"))
            )
        }
        try expect(rejected, "the former owner's commit was accepted after the run was resumed")
        try expect(try await second.checkpoints(agent).isEmpty, "the former owner's checkpoint was written")
        await second.store.detach(run, outcome: .stopped, error: nil)
        await second.close()
        await first.close()
    }

    static func retention(_ backend: Backend) async throws {
        try await attached(backend) { handle, store in
            let claim = try await claim(store)
            for sequence in UInt64(1)...10 {
                _ = try await store.commit(
                    Commit(run: run, agent: agent, epoch: claim.epoch, checkpoint: checkpoint(agent, epoch: claim.epoch, sequence: sequence, "s\(sequence)"))
                )
            }
            let kept = try await handle.checkpoints(agent).map(\.sequence)
            let n = UInt64(backend.retention)
            try expect(kept.last == 10, "the latest checkpoint is missing: kept \(kept)")
            try expect(kept.count >= backend.retention && kept.count < 2 * backend.retention, "kept \(kept) with retention \(n)")
            try expect(kept == Array((11 - UInt64(kept.count))...10), "kept checkpoints are not the newest: \(kept)")
            let latest = try await Self.claim(store, incarnation: 2).latest
            try expect(latest?.sequence == 10 && latest?.state == Array("s10".utf8), "claim returned \(String(describing: latest))")
        }
    }

    static func atomicity(_ backend: Backend) async throws {
        try await attached(backend) { handle, store in
            let claim = try await claim(store)
            let input = try await send(store, to: "a", "in")
            let ids = try await store.commit(
                Commit(
                    run: run,
                    agent: agent,
                    epoch: claim.epoch,
                    checkpoint: checkpoint(agent, epoch: claim.epoch, sequence: 1, "after"),
                    consumed: [input],
                    sent: [SentMessage(to: "b", payload: Array("out1".utf8)), SentMessage(to: "b", payload: Array("out2".utf8))]
                )
            )
            try expect(ids.count == 2 && ids[0] < ids[1] && !ids.contains(input), "sent ids \(ids) (input \(input))")
            let pending = try await handle.pendingMessages(run)
            try expect(pending.map(\.id) == ids, "inbox after the commit: \(pending.map(\.id)), expected \(ids)")
            try expect(pending.allSatisfy { $0.recipient == "b" && $0.sender == "a" }, "recipients/senders: \(pending)")
            try expect(try await handle.checkpoints(agent).map(\.state) == [Array("after".utf8)], "checkpoint not written")
        }
    }

    static func traceKept(_ backend: Backend) async throws {
        let open = try await backend.fresh()
        var handle = try await open()
        _ = try await handle.store.attach(record)
        let first = try await claim(handle.store)
        let traced = #"{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"k=\"v\""}"#
        let fromOutside = try await handle.store.commit(
            Commit(run: run, agent: nil, epoch: 0, sent: [SentMessage(to: "b", payload: Array("outside".utf8), trace: traced)])
        )[0]
        let sent = try await handle.store.commit(
            Commit(
                run: run, agent: agent, epoch: first.epoch,
                checkpoint: checkpoint(agent, epoch: first.epoch, sequence: 1, "a1"),
                sent: [SentMessage(to: "b", payload: Array("plain".utf8)), SentMessage(to: "b", payload: Array("traced".utf8), trace: "{}")]
            )
        )
        let expected: [Int64: String?] = [fromOutside: traced, sent[0]: nil, sent[1]: "{}"]
        let stored = try await handle.pendingMessages(run)
        try expect(
            Dictionary(uniqueKeysWithValues: stored.map { ($0.id, $0.trace) }) == expected,
            "stored traces \(stored.map { ($0.id, $0.trace) }), expected \(expected)"
        )
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()

        handle = try await open()
        _ = try await handle.store.attach(record)
        let adopted = try await claim(handle.store, other).pending
        try expect(adopted.map(\.id) == [fromOutside] + sent, "expected \([fromOutside] + sent) pending for 'b', got \(adopted.map(\.id))")
        try expect(
            adopted.map(\.trace) == [traced, nil, "{}"],
            "a resumed claim returned the traces \(adopted.map(\.trace)), not those stored with the messages"
        )
        await handle.store.detach(run, outcome: .stopped, error: nil)
        await handle.close()
    }
}
