public import Troupe

/// Many small durable agents that sit idle until sent something: what a large tree costs to run, cancel and restart.
public enum Fleet {
    /// Counts the messages it handles; `fail` makes it crash, to watch a crash, its restarts and a dead letter.
    public struct Worker: HandlerAgent {
        public struct State: AgentState {
            public var handled = 0
            public init() {}
        }
        public enum Message: Codable, Sendable {
            /// Counted.
            case work
            /// Thrown while handled: the worker crashes and is restarted, the message is tried again, and after too
            /// many crashes it is dead-lettered (`{"fail":{"reason":"…"}}` from `troupe send`).
            case fail(reason: String)
        }

        /// What a `fail` message throws.
        public struct Failure: Error, CustomStringConvertible {
            public var reason: String
            public var description: String { "told to fail: \(reason)" }
        }

        public init() {}

        public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
            if case .fail(let reason) = message { throw Failure(reason: reason) }
            state.handled += 1
        }
    }
}
