import Testing
import Troupe
import TroupeTestKit

@Suite(.timeLimit(.minutes(3)))
struct DynamicChildrenTests {
    @Test func childrenCanBeStartedTerminatedRestartedAndDeleted() async throws {
        let seen = Recorder<String>()
        let run = try Run(Blueprint("dynamic") { Child("idle", Idler()) }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            let supervisor = run.supervisor
            try await probe.wait(for: "idle", .started)
            try await supervisor.startChild(Child("echo", Echo(seen: seen)))
            #expect(await supervisor.count() == ChildCount(specs: 2, active: 2, supervisors: 0, workers: 2))
            try await run.send(Echo.Message.note("one"), to: "echo")
            try await seen.wait(forCount: 1)

            try await supervisor.terminateChild("echo")
            var echo = await supervisor.children().first { $0.name == "echo" }
            #expect(echo?.status == .stopped)
            #expect(await supervisor.count().active == 1)
            let stopped = await #expect(throws: TroupeError.self) { try await run.send(Echo.Message.note("x"), to: "echo") }
            #expect(stopped?.code == .addressStopped)

            try await supervisor.restartChild("echo")
            try await probe.wait(for: "echo", .started, count: 2)
            echo = await supervisor.children().first { $0.name == "echo" }
            #expect(echo?.status == .running)
            #expect(echo?.incarnation == 2)
            // Starting a terminated child is no restart (OTP's restart_child); restarting a running one is.
            #expect(echo?.restarts == 0)
            try await run.send(Echo.Message.note("two"), to: "echo")
            try await seen.wait(forCount: 2)
            try await supervisor.restartChild("echo")
            try await probe.wait(for: "echo", .started, count: 3)
            #expect(await supervisor.children().first { $0.name == "echo" }?.restarts == 1)

            let running = await #expect(throws: TroupeError.self) { try await supervisor.deleteChild("echo") }
            #expect(running?.code == .childRunning)
            try await supervisor.terminateChild("echo")
            try await supervisor.deleteChild("echo")
            #expect(await supervisor.children().map(\.name) == ["idle"])
            let gone = await #expect(throws: TroupeError.self) { try await run.send(Echo.Message.note("x"), to: "echo") }
            #expect(gone?.code == .unknownAddress)

            let unknown = await #expect(throws: TroupeError.self) { try await supervisor.terminateChild("nobody") }
            #expect(unknown?.code == .unknownChild)
            let duplicate = await #expect(throws: TroupeError.self) { try await supervisor.startChild(Child("idle", Idler())) }
            #expect(duplicate?.code == .duplicateName)
        }
        #expect(seen.values == ["one", "two"])
    }

    /// A deleted child's place in the supervisor goes to the next child started: that child runs its own agent.
    @Test func aChildStartedAfterADeletionRunsItsOwnAgent() async throws {
        let first = Recorder<String>()
        let second = Recorder<String>()
        let run = try Run(Blueprint("reuse") { Child("idle", Idler()) }, configuration: .test())
        let probe = AgentProbe(run)
        try await withRunning(run) {
            let supervisor = run.supervisor
            try await probe.wait(for: "idle", .started)
            try await supervisor.startChild(Child("first", Echo(seen: first)))
            try await run.send(Echo.Message.note("one"), to: "first")
            try await first.wait(forCount: 1)
            try await supervisor.terminateChild("first")
            try await supervisor.deleteChild("first")

            try await supervisor.startChild(Child("second", Echo(seen: second)))
            try await run.send(Echo.Message.note("two"), to: "second")
            try await second.wait(forCount: 1)
            try await supervisor.restartChild("second")
            try await probe.wait(for: "second", .started, count: 2)
            try await run.send(Echo.Message.note("three"), to: "second")
            try await second.wait(forCount: 2)
            let listed = await supervisor.children().map { "\($0.name) \($0.incarnation)" }
            #expect(listed == ["idle 1", "second 2"])
        }
        #expect(first.values == ["one"])
        #expect(second.values == ["two", "three"])
    }

    @Test func listingsShowMailboxDepthAndNestedChildren() async throws {
        let seen = Recorder<String>()
        let run = try Run(Blueprint("listing") {
            Blueprint("inner") { Child("echo", Echo(seen: seen)) }
        }, configuration: .test())
        for n in 0..<5 { try await run.send(Echo.Message.note("\(n)"), to: "echo") }
        // Before the run starts, the messages wait in the mailbox.
        let before = await run.supervisor.children()
        #expect(before.first?.children.first?.mailboxDepth == 5)
        #expect(before.first?.typeName == "Supervisor")
        #expect(before.first?.children.first?.typeName == "Echo")
        try await withRunning(run) { try await seen.wait(forCount: 5) }
        #expect(seen.values == (0..<5).map { "\($0)" })
    }

    @Test func changingChildrenOfAStoppedSupervisorIsRefused() async throws {
        let run = try Run(Blueprint("stopped") { Child("idle", Idler()) }, configuration: .test())
        let error = await #expect(throws: TroupeError.self) { try await run.supervisor.startChild(Child("x", Idler())) }
        #expect(error?.code == .notRunning)
    }
}
