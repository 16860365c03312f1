import Glibc

/// Whether the process that holds a run's lease still lives, for the stores in this package (not public API).
///
/// A lease names its owner by process id and host, and the owner renews a heartbeat. On the owner's own host the
/// process table is the truth (a `kill -9`ed owner is noticed at once); elsewhere only the heartbeat's age is.
package enum OwnerLiveness {
    /// This machine's host name.
    package static let localHost: String = {
        var buffer = [UInt8](repeating: 0, count: 256)
        buffer.withUnsafeMutableBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { _ = gethostname($0.baseAddress!, $0.count - 1) }
        }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }()

    /// Whether an owner lives: on this host, its process exists (and is not a zombie) and has not been silent for
    /// ten timeouts (a long-silent live pid is another program that reused the number); elsewhere, its heartbeat
    /// is younger than `timeout`.
    ///
    /// - Parameters:
    ///   - silence: Milliseconds since its last heartbeat.
    ///   - timeout: Milliseconds of silence after which another host's owner counts as gone.
    package static func isAlive(pid owner: Int64, host ownerHost: String?, silence: Int64, timeout: Int64) -> Bool {
        let fresh = silence < timeout
        guard ownerHost == localHost else { return fresh }
        let exists = (kill(pid_t(owner), 0) == 0 || errno == EPERM) && !isZombie(pid_t(owner))
        return exists && (fresh || silence < timeout * 10)
    }

    /// Whether `pid` has exited and waits to be reaped (a killed process whose parent has not collected it yet).
    package static func isZombie(_ pid: Int32) -> Bool {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return false }
        defer { fclose(file) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = fread(&buffer, 1, buffer.count, file)
        let text = String(decoding: buffer.prefix(count), as: UTF8.self)
        // The state follows the command name, which is in parentheses and may contain spaces.
        guard let close = text.lastIndex(of: ")") else { return false }
        return text[close...].dropFirst().trimmingPrefix(" ").first == "Z"
    }

    /// Why a run cannot be attached: another live process drives it. A silent owner (stopped with SIGSTOP,
    /// overloaded) cannot apply `troupe cancel`, so the message says how long it has been silent and what works.
    package static func heldElsewhere(_ run: RunID, pid: Int64, host: String?, silence: Int64, timeout: Int64) -> TroupeError {
        let age = max(0, silence)
        let host = host ?? "?"
        guard age >= timeout else {
            return TroupeError(
                .leaseHeld,
                "run \(run) is being driven by process \(pid) on \(host) (last heartbeat \(age / 1000)s ago). Two "
                    + "processes never drive one run: stop that one (`troupe cancel \(run)`), or wait for it to end."
            )
        }
        // Same host: a live pid keeps the run for ten lease timeouts of silence; another host's, for one.
        let limit = host == localHost ? timeout * 10 : timeout
        let wait = max(1, (limit - age + 999) / 1000)
        let local = host == localHost ? " `kill -CONT \(pid)` wakes it, `kill \(pid)` ends it;" : ""
        return TroupeError(
            .leaseHeld,
            "run \(run) belongs to process \(pid) on \(host), which has not renewed its lease for \(age / 1000)s (it "
                + "may be stopped with SIGSTOP, or overloaded), so it cannot apply `troupe cancel`.\(local) or wait about "
                + "\(wait)s: a run whose owner stays silent that long is taken over by the next resume."
        )
    }
}
