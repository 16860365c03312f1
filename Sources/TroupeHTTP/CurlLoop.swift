import CCurl
import Synchronization
import Troupe

/// One libcurl multi handle, driven by a thread of its own: transfers are added, cancelled and completed there,
/// and never block Swift's cooperative pool.
///
/// The loop sleeps in `curl_multi_poll` until a socket is ready or another thread calls `curl_multi_wakeup`
/// (which libcurl documents as safe from any thread) to hand it new transfers or cancellations.
final class CurlLoop: Sendable {
    private struct Inbox {
        var starting: [Transfer] = []
        var stopping = false
        /// The multi handle is cleaned up (or the thread never started): no `curl_multi_wakeup` may touch it.
        var closed = false
        /// Why the loop's thread could not start, if it could not.
        var failure: String?
    }

    /// `curl_multi_*` handle. Only the loop thread uses it, except `curl_multi_wakeup`.
    private let multi: Handle
    private let inbox = Mutex(Inbox())
    /// Fulfilled once the loop has ended and the multi handle is cleaned up (or the thread never started).
    let ended = OneShot<Void>()

    init(maxConnectionsPerHost: Int) {
        _ = CurlLoop.globalInit
        multi = Handle(curl_multi_init())
        troupe_curl_multi_setopt_long(multi.pointer, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        if let failure = startThread(named: "troupe-curl", { [self] in loop() }) {
            // The loop never runs: fail every request at once, and let stop() return without waiting for it.
            inbox.withLock { inbox in
                inbox.stopping = true
                inbox.closed = true
                inbox.failure = failure
            }
            curl_multi_cleanup(multi.pointer)
            ended.fulfill(())
        }
    }

    /// Wakes the loop, unless the multi handle is gone. Under the inbox's lock, so that the loop cannot clean the
    /// handle up between the check and the call.
    private func wake() {
        inbox.withLock { inbox in
            if !inbox.closed { curl_multi_wakeup(multi.pointer) }
        }
    }

    /// `curl_global_init`, once per process, before any other call.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// Hands a transfer to the loop.
    func start(_ transfer: Transfer) {
        let refusal = inbox.withLock { inbox -> (stopping: Bool, failure: String?) in
            guard !inbox.stopping else { return (true, inbox.failure) }
            inbox.starting.append(transfer)
            return (false, nil)
        }
        if let failure = refusal.failure {
            return transfer.fail(
                HTTPClientError(
                    code: .shutdown,
                    curlCode: nil,
                    status: nil,
                    url: HTTPClientError.redact(transfer.request.url),
                    message: "the HTTP client could not start its thread (\(failure)); create a new client once "
                        + "threads are available",
                    attempts: 1
                )
            )
        }
        guard !refusal.stopping else { return transfer.fail(HTTPClientError.shutdown(transfer.request.url)) }
        wake()
    }

    /// Asks the loop to abort a transfer as soon as it wakes (within microseconds).
    func cancel(_ transfer: Transfer) {
        transfer.aborted.store(true, ordering: .sequentiallyConsistent)
        wake()
    }

    /// Asks the loop to fail every transfer with ``HTTPClientError/Code/shutdown`` and end; returns at once, without
    /// blocking the caller's thread (``ended`` says when the loop is done).
    func stop() {
        let first = inbox.withLock { inbox -> Bool in
            defer { inbox.stopping = true }
            return !inbox.stopping
        }
        if first { wake() }
    }

    // MARK: The loop thread

    private func loop() {
        var active: [ObjectIdentifier: Transfer] = [:]
        var running: Int32 = 0
        while true {
            let (starting, stopping) = inbox.withLock { inbox in
                defer { inbox.starting.removeAll() }
                return (inbox.starting, inbox.stopping)
            }
            if stopping {
                for transfer in starting { transfer.fail(HTTPClientError.shutdown(transfer.request.url)) }
                for transfer in active.values {
                    curl_multi_remove_handle(multi.pointer, transfer.easy)
                    transfer.fail(HTTPClientError.shutdown(transfer.request.url))
                }
                break
            }
            for transfer in starting {
                if transfer.aborted.load(ordering: .sequentiallyConsistent) {
                    transfer.failCancelled()
                    continue
                }
                do {
                    try transfer.prepare()
                    curl_multi_add_handle(multi.pointer, transfer.easy)
                    active[ObjectIdentifier(transfer)] = transfer
                } catch {
                    transfer.fail(error)
                }
            }
            // Cancellations: remove at once rather than waiting for the progress callback.
            for (key, transfer) in active where transfer.aborted.load(ordering: .sequentiallyConsistent) {
                curl_multi_remove_handle(multi.pointer, transfer.easy)
                active[key] = nil
                transfer.failCancelled()
            }
            curl_multi_perform(multi.pointer, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi.pointer, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let result = message.pointee.data.result
                var context: UnsafeMutableRawPointer?
                troupe_curl_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
                guard let context else { continue }
                let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
                curl_multi_remove_handle(multi.pointer, easy)
                active[ObjectIdentifier(transfer)] = nil
                transfer.complete(result)
            }
            curl_multi_poll(multi.pointer, nil, 0, 1000, nil)
        }
        inbox.withLock { $0.closed = true }
        curl_multi_cleanup(multi.pointer)
        ended.fulfill(())
    }
}

/// A C handle that crosses threads: the multi handle is created on the caller's thread, then used only on the loop
/// thread, and `curl_multi_wakeup` on it is thread-safe by libcurl's documentation.
struct Handle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer?) {
        guard let pointer else { fatalError("libcurl could not allocate a multi handle (out of memory)") }
        self.pointer = pointer
    }
}
