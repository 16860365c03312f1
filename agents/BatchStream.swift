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

    public init(count: Int, size: Int, to target: String) {
        self.count = count
        self.size = size
        self.target = target
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        while state.next < count, !context.isStopping {
            let start = state.next * size
            try await context.send(Batch(index: state.next, items: Array(start..<start + size)), to: target)
            state.next += 1
            try await context.checkpoint(state)
        }
        for await _ in context.messages {}  // done: stay up, idle, until stopped
    }
}

/// Transforms each batch and passes it on (handler style). Can be told to crash once on one batch, to show a
/// restart: the batch is redelivered to the next incarnation, so nothing is lost.
public struct BatchTransformer: Agent {
    public typealias Message = Batch
    public struct InjectedFault: Error, CustomStringConvertible {
        public var batch: Int
        public var description: String { "injected fault on batch \(batch)" }
    }

    let target: String
    let crashOnce: Int?

    public init(to target: String, crashOnceOnBatch crashOnce: Int? = nil) {
        self.target = target
        self.crashOnce = crashOnce
    }

    public func handle(_ batch: Batch, state: inout Stateless, context: AgentContext<Self>) async throws {
        if batch.index == crashOnce, context.deliveryAttempt == 1 { throw InjectedFault(batch: batch.index) }
        try await context.send(Batch(index: batch.index, items: batch.items.map { $0 * 2 }), to: target)
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

    /// - Parameter onBatch: Called with the totals after every batch.
    public init(onBatch: @escaping @Sendable (State) -> Void = { _ in }) {
        self.onBatch = onBatch
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        for await batch in context.messages {
            state.batches += 1
            state.items += batch.items.count
            state.sum += batch.items.reduce(0, +)
            try await context.checkpoint(state)
            onBatch(state)
        }
    }
}
