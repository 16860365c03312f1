import Troupe

/// Counts the greetings the greeter tells it about: a durable agent in the handler style. It handles one message
/// at a time, and each message's change to its state is committed with the message, exactly once.
public struct Tally: HandlerAgent {
    public struct State: AgentState {
        public var greetings = 0
        public init() {}
    }

    public enum Message: Codable, Sendable {
        case greeted(Int)
    }

    let expected: Int

    public init(expected: Int) {
        self.expected = expected
    }

    public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .greeted(let number):
            state.greetings += 1
            context.logger.notice("counted greeting #\(number): \(state.greetings) so far")
            if state.greetings == expected { context.finish() }  // all counted: the tally ends, and so does the run
        }
    }
}

/// The tally's name in the run: it takes only `Tally.Message`, checked by the compiler.
public let tally = AgentName<Tally>("tally")
