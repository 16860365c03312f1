import CCurl
import Dispatch
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
    }

    /// `curl_multi_*` handle. Only the loop thread uses it, except `curl_multi_wakeup`.
    private let multi: Handle
    private let inbox = Mutex(Inbox())
    private let finished = DispatchSemaphore(value: 0)

    init(maxConnectionsPerHost: Int) {
        _ = CurlLoop.globalInit
        multi = Handle(curl_multi_init())
        troupe_curl_multi_setopt_long(multi.pointer, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
        startThread { [self] in loop() }
    }

    /// `curl_global_init`, once per process, before any other call.
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// Hands a transfer to the loop.
    func start(_ transfer: Transfer) {
        let accepted = inbox.withLock { inbox -> Bool in
            guard !inbox.stopping else { return false }
            inbox.starting.append(transfer)
            return true
        }
        guard accepted else { return transfer.fail(HTTPClientError.shutdown(transfer.request.url)) }
        curl_multi_wakeup(multi.pointer)
    }

    /// Asks the loop to abort a transfer as soon as it wakes (within microseconds).
    func cancel(_ transfer: Transfer) {
        transfer.aborted.store(true, ordering: .sequentiallyConsistent)
        curl_multi_wakeup(multi.pointer)
    }

    /// Fails every transfer with ``HTTPClientError/Code/shutdown`` and stops the thread.
    func stop() {
        let first = inbox.withLock { inbox -> Bool in
            defer { inbox.stopping = true }
            return !inbox.stopping
        }
        guard first else { return }
        curl_multi_wakeup(multi.pointer)
        finished.wait()
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
        curl_multi_cleanup(multi.pointer)
        finished.signal()
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
