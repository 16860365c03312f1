public import CoreMetrics
public import Synchronization
public import Instrumentation
import Tracing

/// The engine's handler loop, next to the cell whose mailbox, state and commits it drives. ``AgentContext`` is the
/// agent's view; this is the machinery behind ``AgentContext/handleMessages(state:)`` and the default
/// ``Agent/run(state:context:)`` of a ``HandlerAgent``.
extension AgentCell where A: HandlerAgent {
    /// How many times the handler loop yields, finding the mailbox empty, before it gives up its task.
    @usableFromInline static var yieldsBeforePassivating: Int { 2 }

    /// The engine's handler loop (see ``AgentContext/handleMessages(state:)``), for `context`'s incarnation.
    @inlinable
    func handlerLoop(state: inout A.State, context: AgentContext<A>, passivating: Bool) async throws {
        let cell = self
        let control = context.incarnationControl
        let wake: any MailboxWaker = context
        let persistEach = cell.durability == .checkpointed
        let durable = cell.durability == .durable
        // Neither traced, timed nor checkpointed per message: the handler alone.
        let plain = !persistEach && !durable && cell.environment.tracing == nil && cell.metrics == nil
        var batch: [Envelope<A.Message>] = []
        var hadWork = false
        while !control.shouldLeave {
            if passivating {
                if Task.isCancelled { throw CancellationError() }
                // Leave the state where a resuming task finds it *before* the wake hook can fire.
                cell.parked.withLock { $0 = AgentCell<A>.Parked(state: state, context: context) }
                var received = cell.mailbox.receiveOrPark(into: &batch, wake: nil)
                // Under a steady stream the mailbox is empty only for an instant: a busy agent lets the senders run
                // a little before giving up its task, which costs more to get back than a yield. An agent that has
                // had nothing to do passivates at once.
                let patience = hadWork ? Self.yieldsBeforePassivating : 0
                var yields = 0
                if patience == 0, case .parked = received {
                    received = cell.mailbox.receiveOrPark(into: &batch, wake: wake)
                }
                while case .parked = received, yields < patience {
                    await Task.yield()
                    yields += 1
                    received = cell.mailbox.receiveOrPark(into: &batch, wake: yields == patience ? wake : nil)
                }
                if case .parked = received { throw Passivation() }
                _ = cell.parked.withLock { $0.take() }
                if case .interrupted = received { continue }
            } else {
                switch await cell.mailbox.receive(into: &batch) {
                case .messages, .parked: break
                case .interrupted: continue
                case .cancelled: throw CancellationError()
                }
            }
            hadWork = true
            cell.environment.handled.add(batch.count, ordering: .relaxed)
            if durable {
                try await handleDurably(&batch, state: &state, context: context)
                if control.shouldLeave { return }
                continue
            }
            if plain {
                // The handler is all this loop awaits. The compiler puts a hop back to the loop's executor after
                // every awaited call, and removes it only where it knows the executor already: after the hop that
                // `settle()` leaves, once per batch, instead of a `swift_task_switch` for every message handled.
                await Self.settle()
                var index = 0
                while index < batch.count {
                    if control.shouldLeave {
                        cell.mailbox.requeueFront(batch[index...])
                        return
                    }
                    let envelope = batch[index]
                    context.attempt.store(Int(envelope.failures) + 1, ordering: .relaxed)
                    // Keep the last good state in hand: a handler's changes count only if it returns.
                    var working = state
                    do {
                        try await cell.agent.handle(envelope.message, state: &working, context: context)
                    } catch {
                        let cancelled = Task.isCancelled && error is CancellationError
                        await cell.requeueAfterCrash(batch, failedAt: index, error: error, countsAsFailure: !cancelled, lastGood: state)
                        throw error
                    }
                    state = working
                    index += 1
                }
                batch.removeAll(keepingCapacity: true)
                continue
            }
            var index = 0
            while index < batch.count {
                if control.shouldLeave {
                    cell.metrics?.handled.increment(by: Int64(index))
                    cell.mailbox.requeueFront(batch[index...])
                    return
                }
                context.attempt.store(Int(batch[index].failures) + 1, ordering: .relaxed)
                // Whether a failure is the message's (its handler threw) or the store's (the commit failed): only the
                // former counts towards the message's dead letter, the rule durable agents follow too.
                var handled = false
                do {
                    if persistEach {
                        // The store holds the last good state; a crash restores it from there.
                        try await cell.handle(batch[index].message, trace: cell.mailbox.trace(of: batch[index]), state: &state, context: context)
                        handled = true
                        try await context.commit(state, announce: false)
                    } else {
                        // Keep the last good state in hand: a handler's changes count only if it returns.
                        var working = state
                        try await cell.handle(batch[index].message, trace: cell.mailbox.trace(of: batch[index]), state: &working, context: context)
                        state = working
                    }
                } catch {
                    cell.metrics?.handled.increment(by: Int64(handled ? index + 1 : index))
                    let cancelled = Task.isCancelled && error is CancellationError
                    await cell.requeueAfterCrash(
                        batch,
                        failedAt: index,
                        error: error,
                        countsAsFailure: !cancelled && !handled,
                        lastGood: state
                    )
                    throw error
                }
                index += 1
            }
            cell.metrics?.handled.increment(by: Int64(batch.count))
            batch.removeAll(keepingCapacity: true)
        }
    }

    /// Does nothing, on the global executor: awaited, it leaves the caller on its executor with a hop the compiler
    /// can see (see the handler loop).
    @inlinable @concurrent
    static func settle() async {}

    /// The agent's `handle`, timed when the run records metrics.
    @inlinable
    func handle(_ message: A.Message, trace: InstrumentationContext?, state: inout A.State, context: AgentContext<A>) async throws {
        if let tracing = environment.tracing {
            return try await handleTraced(message, trace: trace, state: &state, context: context, tracing)
        }
        guard let metrics else { return try await agent.handle(message, state: &state, context: context) }
        let started = ContinuousClock.now
        defer { metrics.handled(since: started) }
        try await agent.handle(message, state: &state, context: context)
    }

    /// ``handle(_:trace:state:context:)`` in a span of its own, the parent of the spans it makes and a child of the
    /// sender's (`trace`), so that a message's trace goes on through every agent it reaches.
    @usableFromInline
    func handleTraced(
        _ message: A.Message,
        trace: InstrumentationContext?,
        state: inout A.State,
        context: AgentContext<A>,
        _ tracing: EngineTracing
    ) async throws {
        let started = ContinuousClock.now
        defer { metrics?.handled(since: started) }
        try await tracing.span("handle \(typeName)", kind: .consumer, parent: trace, attributes: { attributes in
            attributes["troupe.run.id"] = id.run.rawValue
            attributes["troupe.agent.name"] = name
            attributes["troupe.agent.incarnation"] = Int(context.incarnationControl.number)
        }) { _ in
            try await agent.handle(message, state: &state, context: context)
        }
    }

    /// Handles a batch for a durable agent and commits it in one transaction: the state after the last message
    /// handled successfully, those messages' removal from the inbox, and what they sent. A message that throws is
    /// not part of the commit, nor is anything it sent; it goes back to the mailbox with the rest of the batch.
    @inlinable
    func handleDurably(_ batch: inout [Envelope<A.Message>], state: inout A.State, context: AgentContext<A>) async throws {
        let cell = self
        let control = context.incarnationControl
        let work = context.work
        var working = state
        var handled = 0
        var failure: (any Error)?
        var sentByHandled = 0
        while handled < batch.count, !control.shouldLeave {
            context.attempt.store(Int(batch[handled].failures) + 1, ordering: .relaxed)
            work.setScope("m\(batch[handled].id)")
            defer { work.setScope(nil) }
            do {
                var next = working
                try await cell.handle(batch[handled].message, trace: cell.mailbox.trace(of: batch[handled]), state: &next, context: context)
                working = next
            } catch {
                failure = error
                break
            }
            handled += 1
            sentByHandled = work.sentCount
        }
        // What the failing message sent never happened.
        work.dropSent(from: sentByHandled)
        if handled > 0 {
            var consumed: [Int64] = []
            consumed.reserveCapacity(handled)
            for envelope in batch[..<handled] where envelope.id != 0 { consumed.append(envelope.id) }
            do {
                try await context.commit(working, consumed: consumed, announce: false)
                cell.metrics?.handled.increment(by: Int64(handled))
            } catch {
                // Nothing of the batch is committed: all of it is handled again by the next incarnation.
                work.dropSent(from: 0)
                cell.mailbox.requeueFront(batch)
                batch.removeAll(keepingCapacity: true)
                throw error
            }
            state = working
        }
        if let failure {
            let cancelled = Task.isCancelled && failure is CancellationError
            await cell.requeueAfterCrash(batch, failedAt: handled, error: failure, countsAsFailure: !cancelled, lastGood: state)
            batch.removeAll(keepingCapacity: true)
            throw failure
        }
        if handled < batch.count { cell.mailbox.requeueFront(batch[handled...]) }
        batch.removeAll(keepingCapacity: true)
    }
}
