public import Troupe

/// A batch of numbers flowing through the batch stream.
public struct Batch: Codable, Sendable, Equatable {
    public var index: Int
    public var items: [Int]
    public init(index: Int, items: [Int]) {
        self.index = index
        self.items = items
    }
}

/// Produces `count` batches and sends them on; a full mailbox downstream slows it down (backpressure).
///
/// Checkpoints its position, so a restarted producer continues with the next batch.
public struct BatchProducer: Agent {
    public struct State: AgentState {
        public var next = 0
        public init() {}
    }

    let count: Int
    let size: Int
    let target: String
    let stayUp: Bool

    /// - Parameter stayUp: Whether to stay up, idle, once every batch is sent (until stopped), or to end.
    public init(count: Int, size: Int, to target: String, stayUp: Bool = true) {
        self.count = count
        self.size = size
        self.target = target
        self.stayUp = stayUp
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        while state.next < count, !context.isStopping {
            let start = state.next * size
            try await context.send(Batch(index: state.next, items: Array(start..<start + size)), to: target)
            state.next += 1
            try await context.checkpoint(state)
        }
        if stayUp { for await _ in context.messages {} }
    }
}

/// Transforms each batch and passes it on (handler style). Can be told to crash once on one batch, to show a
/// restart: the batch is redelivered to the next incarnation, so nothing is lost. Given a count, it finishes once it
/// has passed that many batches on.
public struct BatchTransformer: HandlerAgent {
    public typealias Message = Batch
    public struct State: AgentState {
        public var passed = 0
        public init() {}
    }
    public struct InjectedFault: Error, CustomStringConvertible {
        public var batch: Int
        public var description: String { "injected fault on batch \(batch)" }
    }

    let target: String
    let crashOnce: Int?
    let count: Int?

    public init(to target: String, crashOnceOnBatch crashOnce: Int? = nil, count: Int? = nil) {
        self.target = target
        self.crashOnce = crashOnce
        self.count = count
    }

    public func handle(_ batch: Batch, state: inout State, context: AgentContext<Self>) async throws {
        if batch.index == crashOnce, context.deliveryAttempt == 1 { throw InjectedFault(batch: batch.index) }
        try await context.send(Batch(index: batch.index, items: batch.items.map { $0 * 2 }), to: target)
        state.passed += 1
        if let count, state.passed >= count { context.finish() }
    }
}

/// Reads its mailbox as an `AsyncSequence` of batches and keeps running totals.
public struct BatchSink: Agent {
    public typealias Message = Batch
    public struct State: AgentState, Equatable {
        public var batches = 0
        public var items = 0
        public var sum = 0
        public init() {}
    }

    let onBatch: @Sendable (State) -> Void
    let count: Int?

    /// - Parameters:
    ///   - count: If given, the sink ends once it has taken that many batches.
    ///   - onBatch: Called with the totals after every batch.
    public init(count: Int? = nil, onBatch: @escaping @Sendable (State) -> Void = { _ in }) {
        self.count = count
        self.onBatch = onBatch
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        if let count, state.batches >= count { return }
        for await batch in context.messages {
            state.batches += 1
            state.items += batch.items.count
            state.sum += batch.items.reduce(0, +)
            try await context.checkpoint(state)
            onBatch(state)
            if let count, state.batches >= count { return }
        }
    }
}
