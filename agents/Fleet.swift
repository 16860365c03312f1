public import Troupe

/// Many small durable agents that sit idle until sent something: what a large tree costs to run, cancel and restart.
public enum Fleet {
    /// Counts the messages it handles.
    public struct Worker: Agent {
        public struct State: AgentState {
            public var handled = 0
            public init() {}
        }
        public enum Message: Codable, Sendable { case work }

        public init() {}

        public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
            state.handled += 1
        }
    }
}
