import Testing

@testable import Troupe

@Suite struct MailboxTests {
    @Test func trySendRefusesWhenFull() throws {
        let mailbox = Mailbox<Int>(name: "m", capacity: 2)
        #expect(try mailbox.trySend(1))
        #expect(try mailbox.trySend(2))
        #expect(try !mailbox.trySend(3))
        #expect(mailbox.depth == 2)
    }

    @Test(.timeLimit(.minutes(3)))
    func aFullMailboxSuspendsTheSenderUntilTheConsumerDrains() async throws {
        let mailbox = Mailbox<Int>(name: "m", capacity: 2)
        try await mailbox.send(1)
        try await mailbox.send(2)
        let third = Task { try await mailbox.send(3) }
        // The third sender parks: depth counts it, but the buffer holds only two.
        while mailbox.depth < 3 { await Task.yield() }
        var batch: [Envelope<Int>] = []
        #expect(await mailbox.receive(into: &batch) == .messages)
        #expect(batch.map(\.message) == [1, 2])
        try await third.value
        batch.removeAll()
        #expect(await mailbox.receive(into: &batch) == .messages)
        #expect(batch.map(\.message) == [3])
    }

    @Test(.timeLimit(.minutes(3)))
    func eachSendersOrderIsKeptAndNothingIsLost() async throws {
        let mailbox = Mailbox<(sender: Int, n: Int)>(name: "m", capacity: 16)
        let senders = 4
        let perSender = 5_000
        let consumer = Task {
            var last = [Int](repeating: -1, count: senders)
            var total = 0
            var batch: [Envelope<(sender: Int, n: Int)>] = []
            while total < senders * perSender {
                guard await mailbox.receive(into: &batch) == .messages else { continue }
                for envelope in batch {
                    let (sender, n) = envelope.message
                    #expect(n == last[sender] + 1, "sender \(sender) out of order")
                    last[sender] = n
                }
                total += batch.count
                batch.removeAll(keepingCapacity: true)
            }
            return total
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                group.addTask {
                    for n in 0..<perSender {
                        if n % 3 == 0 {
                            try await mailbox.send(contentsOf: [(sender, n)])
                        } else {
                            try await mailbox.send((sender, n))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(await consumer.value == senders * perSender)
    }

    @Test(.timeLimit(.minutes(3)))
    func aStoppedMailboxRefusesSendersAndFailsParkedOnes() async throws {
        let mailbox = Mailbox<Int>(name: "worker", capacity: 1)
        try await mailbox.send(1)
        let parked = Task { try await mailbox.send(2) }
        while mailbox.depth < 2 { await Task.yield() }
        mailbox.setAccepting(false)
        await #expect(throws: TroupeError(.addressStopped, "")) { try await parked.value }
        await #expect(throws: TroupeError(.addressStopped, "")) { try await mailbox.send(3) }
        // What was queued stays queued for the agent's next incarnation.
        #expect(mailbox.depth == 1)
        mailbox.setAccepting(true)
        #expect(try !mailbox.trySend(3), "still full with the queued message")
        var batch: [Envelope<Int>] = []
        _ = await mailbox.receive(into: &batch)
        #expect(batch.map(\.message) == [1])
        #expect(try mailbox.trySend(3))
    }

    @Test(.timeLimit(.minutes(3)))
    func aCancelledParkedSenderDeliversNothing() async throws {
        let mailbox = Mailbox<Int>(name: "m", capacity: 1)
        try await mailbox.send(1)
        let parked = Task { try await mailbox.send(2) }
        while mailbox.depth < 2 { await Task.yield() }
        parked.cancel()
        await #expect(throws: CancellationError.self) { try await parked.value }
        var batch: [Envelope<Int>] = []
        _ = await mailbox.receive(into: &batch)
        #expect(batch.map(\.message) == [1])
        #expect(mailbox.depth == 0)
    }

    @Test func requeuedMessagesComeFirstInTheirOrder() async throws {
        let mailbox = Mailbox<Int>(name: "m", capacity: 8)
        try await mailbox.send(3)
        mailbox.requeueFront([Envelope(1), Envelope(2)])
        var batch: [Envelope<Int>] = []
        _ = await mailbox.receive(into: &batch)
        #expect(batch.map(\.message) == [1, 2, 3])
    }

    @Test(.timeLimit(.minutes(3)))
    func interruptWakesAWaitingConsumer() async {
        let mailbox = Mailbox<Int>(name: "m", capacity: 8)
        let consumer = Task {
            var batch: [Envelope<Int>] = []
            return await mailbox.receive(into: &batch)
        }
        mailbox.interrupt()
        #expect(await consumer.value == .interrupted)
    }
}
