import Troupe

/// Greets every `interval`, `count` times, and remembers how far it got: a durable agent. Kill its process
/// (even with `kill -9`) and resume the run: it greets on from the last greeting it committed, and its sleep
/// ends at the deadline it had.
public struct Greeter: Agent {
    public struct State: AgentState {
        public var greetings = 0
        public init() {}
    }

    let count: Int
    let interval: Duration

    public init(count: Int, interval: Duration) {
        self.count = count
        self.interval = interval
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        while state.greetings < count {
            try await context.sleep(for: interval)  // a durable timer
            state.greetings += 1
            context.logger.notice("hello #\(state.greetings)")
            try await context.checkpoint(state)  // committed: a resume continues from here
        }
    }

    /// The blueprint: one greeter, durable, that ends once it has greeted `count` times.
    public static func blueprint(count: Int, interval: Duration) -> Blueprint {
        Blueprint("hello", durability: .durable) {
            Child("greeter", Greeter(count: count, interval: interval), restart: .transient)
        }
    }
}
