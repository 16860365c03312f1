import Foundation
import Testing
import Troupe
import TroupeTestKit

/// Version 1 of a tally: a count of numbers added, and its message shape then.
struct TallyV1: HandlerAgent {
    struct State: AgentState { var count = 0 }
    enum Message: Codable, Sendable { case add(Int) }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        if case .add(let n) = message { state.count += n }
    }
}

/// Version 2: the state and the message changed shape, and it says how to read version 1's.
struct TallyV2: HandlerAgent {
    struct State: Codable, Sendable, Equatable {
        var total: Int
        var origin: String
    }
    enum Message: Codable, Sendable {
        case plus(amount: Int)
        case read(Reply<State>)
    }
    static var stateVersion: Int { 2 }

    func initialState() -> State { State(total: 0, origin: "new") }

    static func migrate(_ stored: StoredValue, from version: Int) throws -> State? {
        guard version == 1 else { return nil }
        return State(total: try stored.decode(TallyV1.State.self).count, origin: "migrated from 1")
    }

    static func migrate(message stored: StoredValue) throws -> Message? {
        guard case .add(let n) = try stored.decode(TallyV1.Message.self) else { return nil }
        return .plus(amount: n)
    }

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .plus(let amount): state.total += amount
        case .read(let reply): reply(state)
        }
    }
}

/// Version 3 knows no way from version 1.
struct TallyV3: HandlerAgent {
    typealias State = TallyV2.State
    typealias Message = TallyV2.Message
    static var stateVersion: Int { 3 }
    func initialState() -> State { State(total: 0, origin: "new") }
    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {}
}

@Suite(.timeLimit(.minutes(3)))
struct StateMigrationTests {
    static let run: RunID = "run-migrate"

    /// A first run of version 1 counts to 12 and leaves an old-shaped message waiting in its durable inbox.
    func versionOneRun(_ store: InMemoryCheckpointStore) async throws {
        let first = try Run(Blueprint("tally", durability: .durable) { Child("tally", TallyV1()) }, id: Self.run, configuration: .test(store: store))
        try await withRunning(first) {
            try await first.send(TallyV1.Message.add(5), to: "tally")
            try await first.send(TallyV1.Message.add(7), to: "tally")
            let deadline = ContinuousClock.now + .seconds(20)
            while try store.checkpoints(of: AgentID(run: Self.run, name: "tally")).last.map({
                try JSONDecoder().decode(TallyV1.State.self, from: Data($0.state)).count
            }) != 12 {
                try #require(ContinuousClock.now < deadline, "version 1 did not checkpoint a count of 12")
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        // Accepted by a process that died before handling it.
        _ = try await store.attach(RunRecord(id: Self.run, blueprint: "tally", agents: ["tally"]))
        let old = Array(try JSONEncoder().encode(TallyV1.Message.add(10)))
        _ = try await store.commit(Commit(run: Self.run, agent: nil, epoch: 0, sent: [SentMessage(to: "tally", payload: old)]))
        await store.detach(Self.run, outcome: .failed, error: "killed")
    }

    @Test func aResumedAgentReadsItsOlderStateAndMessagesThroughItsMigrations() async throws {
        let store = InMemoryCheckpointStore()
        try await versionOneRun(store)
        let agent = AgentID(run: Self.run, name: "tally")
        #expect(store.checkpoints(of: agent).last?.stateVersion == 1)

        let second = try Run(Blueprint("tally", durability: .durable) { Child("tally", TallyV2()) }, id: Self.run, configuration: .test(store: store))
        let state = try await withRunning(second) {
            // The old message first (it was waiting), then this one.
            try await second.send(TallyV2.Message.plus(amount: 100), to: "tally")
            return try await second.call("tally", timeout: .seconds(60)) { TallyV2.Message.read($0) }
        }
        #expect(second.isResumed == true)
        #expect(state == TallyV2.State(total: 122, origin: "migrated from 1"))
        // The next commit checkpointed the migrated state under the new version.
        let latest = try #require(store.checkpoints(of: agent).last)
        #expect(latest.stateVersion == 2)
        #expect(try JSONDecoder().decode(TallyV2.State.self, from: Data(latest.state)).total == 122)
        #expect(store.deadLetters.isEmpty, "\(store.deadLetters.map(\.error))")
    }

    @Test func aVersionWithNoPathIsQuarantinedSayingWhichAgentAndVersions() async throws {
        let store = InMemoryCheckpointStore()
        try await versionOneRun(store)
        let third = try Run(Blueprint("tally", durability: .durable) { Child("tally", TallyV3()) }, id: Self.run, configuration: .test(store: store))
        let probe = AgentProbe(third)
        try await withRunning(third) {
            let events = try await probe.wait(for: "tally", .quarantined)
            guard case .quarantined(let error) = events.last?.kind else {
                Issue.record("no quarantine: \(events)")
                return
            }
            #expect(error.contains("agent 'tally'") && error.contains("state version 1") && error.contains("reads version 3"), "\(error)")
            #expect(error.contains("no path from version 1"), "\(error)")
        }
        // The old checkpoint is kept for a build that can read it.
        #expect(store.checkpoints(of: AgentID(run: Self.run, name: "tally")).last?.stateVersion == 1)
    }
}
