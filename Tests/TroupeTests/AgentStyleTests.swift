import Foundation
import Testing
import Troupe
import TroupeTestKit
import TroupeTestSupport

/// An agent is held to its style at compile time: each snippet is type-checked against the built `Troupe` module.
/// A near-miss `handle` used to compile and trap at the first message; now it is a compile error.
/// One compiler at a time: seven at once, at the start of the suite, took both cores long enough to starve the
/// other tests running beside them.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct AgentStyleTests {
    static let header = """
        import Troupe
        struct State: AgentState { var total = 0 }
        enum Message: Codable, Sendable { case add(Int) }

        """

    /// Type-checks `source` (after ``header``) with the toolchain's `swiftc`; returns its exit status and errors.
    func typecheck(_ source: String) async throws -> (status: Int32, errors: String) {
        let scratch = try ScratchDirectory("troupe-style-")
        let file = scratch.file("Snippet.swift")
        try (Self.header + source).write(toFile: file, atomically: true, encoding: .utf8)
        let output = try await swiftTypecheck([file])
        return (output.status, output.stderr)
    }

    @Test func aHandlerAgentWithTheRightSignatureCompiles() async throws {
        let result = try await typecheck("""
            struct Counter: HandlerAgent {
                func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {}
            }
            struct Ticker: Agent {
                func run(state: inout State, context: AgentContext<Self>) async throws {}
            }
            """)
        #expect(result.status == 0, "\(result.errors)")
    }

    @Test(arguments: [
        ("state not inout", "func handle(_ message: Message, state: State, context: AgentContext<Self>) async throws {}"),
        ("a message that is not Codable", "func handle(_ message: () -> Void, state: inout State, context: AgentContext<Self>) async throws {}"),
        ("a label too many", "func handle(message: Message, state: inout State, context: AgentContext<Self>) async throws {}"),
        ("no handle at all", "func handel(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {}"),
    ])
    func aNearMissHandleIsACompileError(_ miss: String, _ declaration: String) async throws {
        let result = try await typecheck("""
            struct Counter: HandlerAgent {
                \(declaration)
            }
            """)
        #expect(result.status != 0, "\(miss): compiled")
        #expect(result.errors.contains("does not conform to protocol 'HandlerAgent'"), "\(miss): \(result.errors)")
    }

    @Test func anAgentWithoutRunIsACompileError() async throws {
        // A handler written against a plain `Agent` (the style is `HandlerAgent`), and a loop agent that forgot `run`.
        let handlerOnly = try await typecheck("""
            struct Counter: Agent {
                func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {}
            }
            """)
        #expect(handlerOnly.status != 0)
        #expect(handlerOnly.errors.contains("does not conform to protocol 'Agent'"), "\(handlerOnly.errors)")
        let loopless = try await typecheck("""
            struct Ticker: Agent {
                func tick(state: inout State, context: AgentContext<Self>) async throws {}
            }
            """)
        #expect(loopless.status != 0)
        #expect(loopless.errors.contains("does not conform to protocol 'Agent'"), "\(loopless.errors)")
    }

    /// A typed name takes only its agent's messages: the right one compiles, another agent's does not.
    @Test func aTypedNameTakesOnlyItsAgentsMessages() async throws {
        let agents = """
            struct Counter: HandlerAgent {
                func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {}
            }
            enum Other: Codable, Sendable { case ping }
            let counter = AgentName<Counter>("counter")
            let blueprint = Blueprint("typed") { Child(counter, Counter()) }

            """
        let right = try await typecheck(agents + "func send(_ run: Run) async throws { try await run.send(.add(1), to: counter) }\n")
        #expect(right.status == 0, "\(right.errors)")
        let wrong = try await typecheck(agents + "func send(_ run: Run) async throws { try await run.send(Other.ping, to: counter) }\n")
        #expect(wrong.status != 0, "a message of another type to a typed name compiled")
        #expect(wrong.errors.contains("Other") && wrong.errors.contains("Message"), "\(wrong.errors)")
    }
}

/// Typed names at run time: the same messages reach the same agents as through their string names.
@Suite(.timeLimit(.minutes(3)))
struct TypedNameTests {
    @Test func aTypedNameSendsAndCalls() async throws {
        let counter = AgentName<Counter>("counter")
        let run = try Run(Blueprint("typed") { Child(counter, Counter()) }, configuration: .test())
        let total = try await withRunning(run) {
            try await run.send(.add(2), to: counter)
            try await run.send(Counter.Message.add(3), to: "counter")
            return try await run.call(counter, timeout: .seconds(60)) { .total($0) }
        }
        #expect(total == 5)
        #expect(counter.description == "counter")
    }
}
