import Synchronization

/// Per run, the loss of a store instance's lease, for ``CheckpointStore/leaseLoss(of:)`` (the SQLite and PostgreSQL
/// stores).
package final class LeaseWatch: Sendable {
    package init() {}

    private let losses = Mutex<[RunID: OneShot<TroupeError>]>([:])

    package func loss(of run: RunID) -> OneShot<TroupeError> {
        losses.withLock { losses in
            if let loss = losses[run] { return loss }
            let loss = OneShot<TroupeError>()
            losses[run] = loss
            return loss
        }
    }

    package func lost(_ run: RunID, _ error: TroupeError) { loss(of: run).fulfill(error) }

    /// A new lease: waiters from now on wait for its loss.
    package func renew(_ run: RunID) {
        losses.withLock { losses in
            if losses[run]?.value != nil { losses[run] = nil }
        }
    }
}

