import Dispatch
import Synchronization
import Troupe

/// What the store's threads share about its worker registration: the writer thread records heartbeats and the
/// drain flag; the watchdog thread fences the process when heartbeats stop; the store reads ``isDraining``.
final class WorkerState: Sendable {
    /// When the last heartbeat succeeded (monotonic milliseconds); 0 while not registered.
    private let lastBeat = Atomic<Int64>(0)
    private let draining = Atomic<Bool>(false)
    /// Set by the watchdog: the writer gives the registration up at its next heartbeat.
    let fenced = Atomic<Bool>(false)

    /// Whether the watchdog fenced the process (its heartbeat went silent too long).
    var isFenced: Bool { fenced.load(ordering: .sequentiallyConsistent) }
    /// The runs this process leases (a copy of the writer's map, for the watchdog).
    let leased = Mutex<Set<RunID>>([])

    static func now() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    func registered(_ id: Int64) {
        fenced.store(false, ordering: .sequentiallyConsistent)
        lastBeat.store(Self.now(), ordering: .sequentiallyConsistent)
    }

    func unregistered() {
        lastBeat.store(0, ordering: .sequentiallyConsistent)
        fenced.store(false, ordering: .sequentiallyConsistent)
    }

    func beat(draining: Bool) {
        lastBeat.store(Self.now(), ordering: .sequentiallyConsistent)
        self.draining.store(draining, ordering: .sequentiallyConsistent)
    }

    var isDraining: Bool { draining.load(ordering: .sequentiallyConsistent) }

    /// Milliseconds since the last successful heartbeat; 0 while not registered.
    var silence: Int64 {
        let last = lastBeat.load(ordering: .sequentiallyConsistent)
        return last == 0 ? 0 : Self.now() - last
    }

    /// Fences the process if it has been silent longer than `limit` milliseconds: returns the runs whose leases
    /// it must give up at once (each once), and marks the registration for the writer to give up.
    func fenceIfSilent(longerThan limit: Int64) -> Set<RunID> {
        guard silence > limit, !fenced.exchange(true, ordering: .sequentiallyConsistent) else { return [] }
        return leased.withLock { $0 }
    }
}
