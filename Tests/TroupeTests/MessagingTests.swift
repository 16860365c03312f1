import Testing
import Troupe
import TroupeTestKit

/// Answers `.ask` by the book, drops `.ignore`'s reply, and fails `.refuse`'s.
struct Oracle: HandlerAgent {
    enum Message: Codable, Sendable {
        case ask(Int, Reply<Int>)
        case ignore(Reply<Int>)
        case refuse(Reply<Int>)
    }

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        switch message {
        case .ask(let n, let reply): reply(n * 2)
        case .ignore: break
        case .refuse(let reply): reply.fail("oracle refuses")
        }
    }
}

struct Quote: Codable, Sendable, Equatable {
    var symbol: String
    var price: Int
}

extension Topic where Payload == Quote {
    static let quotes = Topic("quotes")
}

/// Subscribes to quotes at start and records them.
struct QuoteWatcher: HandlerAgent {
    enum Message: Codable, Sendable { case quote(Quote) }
    let seen: Recorder<String>

    func setUp(context: AgentContext<Self>) async throws {
        context.subscribe(to: .quotes) { .quote($0) }
    }

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .quote(let quote) = message else { return }
        seen.record("\(context.name):\(quote.symbol)=\(quote.price)")
    }
}

@Suite(.timeLimit(.minutes(3)))
struct MessagingTests {
    @Test func callReturnsTheReply() async throws {
        let run = try Run(Blueprint("calls") { Child("oracle", Oracle()) }, configuration: .test())
        let answer = try await withRunning(run) {
            try await run.call("oracle", timeout: .seconds(60)) { Oracle.Message.ask(21, $0) }
        }
        #expect(answer == 42)
    }

    @Test func callTimesOutOnTheRunsClock() async throws {
        let clock = ManualClock()
        let run = try Run(Blueprint("calls") { Child("oracle", Oracle()) }, configuration: .test(clock: clock))
        try await withRunning(run) {
            let call = Task { try await run.call("oracle", timeout: .seconds(3)) { Oracle.Message.ignore($0) } }
            await clock.waitForSleepers(1)
            clock.advance(by: .seconds(3))
            await #expect(throws: TroupeError(.timeout, "")) { try await call.value }
        }
    }

    @Test func aFailedReplyThrowsNoReply() async throws {
        let run = try Run(Blueprint("calls") { Child("oracle", Oracle()) }, configuration: .test())
        try await withRunning(run) {
            let error = await #expect(throws: TroupeError.self) {
                try await run.call("oracle", timeout: .seconds(60)) { Oracle.Message.refuse($0) }
            }
            #expect(error?.code == .noReply)
            #expect(error?.message == "oracle refuses")
        }
    }

    @Test func publishingFansOutToEverySubscriber() async throws {
        let seen = Recorder<String>()
        let blueprint = Blueprint("pubsub") {
            Child("w1", QuoteWatcher(seen: seen))
            Child("w2", QuoteWatcher(seen: seen))
            Child("w3", QuoteWatcher(seen: seen))
        }
        let run = try Run(blueprint, configuration: .test())
        let probe = AgentProbe(run)
        let delivered = try await withRunning(run) {
            for name in ["w1", "w2", "w3"] { try await probe.wait(for: name, .started) }
            var delivered: [Int] = []
            for price in 1...4 { delivered.append(try await run.publish(Quote(symbol: "ACME", price: price), to: .quotes)) }
            try await seen.wait(forCount: 12)
            return delivered
        }
        #expect(delivered == [3, 3, 3, 3])
        for watcher in ["w1", "w2", "w3"] {
            #expect(seen.values.filter { $0.hasPrefix(watcher) } == (1...4).map { "\(watcher):ACME=\($0)" })
        }
    }

    @Test func badAddressesGetClearErrors() async throws {
        let run = try Run(Blueprint("errors") { Child("oracle", Oracle()) }, configuration: .test())
        let unknown = await #expect(throws: TroupeError.self) { try await run.send(Oracle.Message.ignore(.detached), to: "oracel") }
        #expect(unknown?.code == .unknownAddress)
        #expect(unknown?.message.contains("'oracel'") == true)
        let wrongType = await #expect(throws: TroupeError.self) { try await run.send("hello", to: "oracle") }
        #expect(wrongType?.code == .wrongMessageType)
        #expect(wrongType?.message.contains("String") == true)
    }

    @Test func poolsSpreadMessagesOverTheirMembers() async throws {
        let seen = Recorder<String>()
        let run = try Run(Blueprint("pools") { Pool("echo", count: 4) { _ in Echo(seen: seen) } }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            for member in 0..<4 { try await probe.wait(for: "echo-\(member)", .started) }
            for n in 0..<8 { try await run.send(Echo.Message.note("\(n)"), to: "echo") }
            try await seen.wait(forCount: 8)
        }
        #expect(Set(seen.values) == Set((0..<8).map { "\($0)" }))
        let count = await run.supervisor.supervisor(named: "echo")?.count()
        #expect(count?.workers == 4)
    }

    @Test func tryingToSendToAFullMailboxReturnsFalse() async throws {
        let seen = Recorder<String>()
        let run = try Run(Blueprint("full") {
            Child("echo", Echo(seen: seen), options: AgentOptions(mailboxCapacity: 2))
        }, configuration: .test())
        // Not started: nothing drains the mailbox.
        #expect(try run.trySend(Echo.Message.note("1"), to: "echo"))
        #expect(try run.trySend(Echo.Message.note("2"), to: "echo"))
        #expect(try !run.trySend(Echo.Message.note("3"), to: "echo"))
        try await withRunning(run) { try await seen.wait(forCount: 2) }
        #expect(seen.values == ["1", "2"])
    }
}
