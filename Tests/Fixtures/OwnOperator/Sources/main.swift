import Troupe
import TroupeCLI

/// Greets every name it is sent, and counts the greetings.
struct Greeter: HandlerAgent {
    struct State: AgentState { var greeted = 0 }
    enum Message: Codable, Sendable { case greet(String) }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .greet(let name) = message else { return }
        state.greeted += 1
        context.logger.info("hello, \(name)")
    }
}

let greetings = BlueprintEntry(
    "greetings",
    summary: "A pool of greeters.",
    parameters: [.init("greeters", default: "2", help: "How many greeters.")]
) { parameters in
    let count = try parameters.int("greeters")
    return Blueprint("greetings", durability: .durable) {
        Pool("greeter", Greeter(), count: count)
    }
}

await TroupeCommand.main(blueprints: [greetings])
