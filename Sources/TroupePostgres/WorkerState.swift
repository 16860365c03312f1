import Dispatch
import Synchronization
import Troupe

/// What the store's threads share about its worker registration: the writer thread records heartbeats and the
/// drain flag; the watchdog thread fences the process when heartbeats stop; the store reads ``isDraining``.
final class WorkerState: Sendable {
    /// When the last heartbeat succeeded (monotonic milliseconds); 0 while not registered.
    private let lastBeat = Atomic<Int64>(0)
    /// When the server last answered that it is starting up or recovering (monotonic milliseconds; 0: never).
    private let refusedWhileRecovering = Atomic<Int64>(0)
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

    /// The server refused a connection because it is starting up or recovering: as of now it serves no session,
    /// so no other worker can be taking this one's runs over (see ``fenceIfSilent(longerThan:)``).
    func serverRecovering() {
        refusedWhileRecovering.store(Self.now(), ordering: .sequentiallyConsistent)
    }

    /// Milliseconds since the last successful heartbeat; 0 while not registered.
    var silence: Int64 {
        let last = lastBeat.load(ordering: .sequentiallyConsistent)
        return last == 0 ? 0 : Self.now() - last
    }

    /// Fences the process if it has been silent longer than `limit` milliseconds: returns the runs whose leases
    /// it must give up at once (each once), and marks the registration for the writer to give up.
    ///
    /// Silence is counted from the last heartbeat or the last time the server said it was recovering, whichever
    /// is later: a server that serves no session lets no other worker evict this one, and once it serves again
    /// every registered worker counts as alive for ten heartbeat intervals (`Session.aliveSQL`), so a server
    /// restart longer than the fence interval fences no worker. A server that stops answering at all (a partition,
    /// a host down) proves nothing, and the fence comes on time.
    func fenceIfSilent(longerThan limit: Int64) -> Set<RunID> {
        let last = lastBeat.load(ordering: .sequentiallyConsistent)
        guard last != 0 else { return [] }
        let unproven = Self.now() - max(last, refusedWhileRecovering.load(ordering: .sequentiallyConsistent))
        guard unproven > limit, !fenced.exchange(true, ordering: .sequentiallyConsistent) else { return [] }
        return leased.withLock { $0 }
    }
}
