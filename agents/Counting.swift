public import Troupe

/// A durable counting pipeline: `source` emits 1…count to `relay`, which forwards each number to `counter`, which
/// adds them up and checks that each arrives exactly once and in order.
///
/// Every agent is ``Durability/durable``: kill the process at any moment, resume the run, and the counter's totals
/// are still exact. Each agent finishes once its part is done (the relay and the counter with
/// ``AgentContext/finish()``), and they are `transient`, so the run completes. The crash test and the operator
/// walkthrough run it.
public enum Counting {
    /// Emits numbers in batches, committing its position with the numbers sent since the last checkpoint.
    public struct Source: Agent {
        public struct State: AgentState {
            public var next = 1
            public init() {}
        }
        public let count: Int
        /// A pause between batches, so that a run lasts long enough to watch.
        public let interval: Duration

        public init(count: Int, interval: Duration = .zero) {
            self.count = count
            self.interval = interval
        }

        public func run(state: inout State, context: AgentContext<Self>) async throws {
            while state.next <= count, !context.isStopping {
                for _ in 0..<25 where state.next <= count {
                    try await context.send(Relay.Message.value(state.next), to: "relay")
                    state.next += 1
                }
                try await context.checkpoint(state)
                if interval > .zero { try await context.sleep(for: interval) }
            }
        }
    }

    /// Forwards each number to the counter, and finishes once it has forwarded `count`.
    public struct Relay: HandlerAgent {
        public struct State: AgentState {
            public var forwarded = 0
            public init() {}
        }
        public enum Message: Codable, Sendable { case value(Int) }
        public let count: Int

        public init(count: Int = .max) { self.count = count }

        public func run(state: inout State, context: AgentContext<Self>) async throws {
            guard state.forwarded < count else { return }  // done before a restart or a resume
            try await context.handleMessages(state: &state)
        }

        public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
            guard case .value(let value) = message else { return }
            try await context.send(Counter.Message.value(value), to: "counter")
            state.forwarded += 1
            if state.forwarded == count { context.finish() }
        }
    }

    /// Adds the numbers up; counts any that arrive twice or out of order (both must stay 0).
    public struct Counter: HandlerAgent {
        public struct State: AgentState {
            public var count = 0
            public var sum = 0
            public var last = 0
            public var duplicates = 0
            public var gaps = 0
            public init() {}
        }
        public enum Message: Codable, Sendable { case value(Int) }
        public let count: Int
        /// Called with the state once `count` numbers have arrived.
        public let complete: @Sendable (State) -> Void

        public init(count: Int, complete: @escaping @Sendable (State) -> Void = { _ in }) {
            self.count = count
            self.complete = complete
        }

        public func run(state: inout State, context: AgentContext<Self>) async throws {
            guard state.count < count else { return }  // done before a restart or a resume
            try await context.handleMessages(state: &state)
        }

        public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
            guard case .value(let value) = message else { return }
            if value <= state.last {
                state.duplicates += 1
            } else {
                if value != state.last + 1 { state.gaps += 1 }
                state.last = value
            }
            state.count += 1
            state.sum += value
            if state.count == count {
                complete(state)
                context.finish()
            }
        }
    }

    /// The pipeline as a blueprint.
    public static func blueprint(
        count: Int,
        interval: Duration = .zero,
        complete: @escaping @Sendable (Counter.State) -> Void = { _ in }
    ) -> Blueprint {
        Blueprint("counting", durability: .durable) {
            Child("source", Source(count: count, interval: interval), restart: .transient)
            Child("relay", Relay(count: count), restart: .transient)
            Child("counter", Counter(count: count, complete: complete), restart: .transient)
        }
    }
}
