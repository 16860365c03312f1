import Glibc

/// Starts a detached POSIX thread running `body`, for the package's long-lived loops (the SQLite writer, the curl
/// loop, the loopback server's connections). They block in C calls, so they must not sit on Swift's cooperative
/// pool; and Dispatch starts threads for queues lazily and caps them, which measured as seconds of delay before
/// such a loop ran when many were blocked at once.
///
/// - Returns: `nil` once the thread runs, or the reason it could not be created (`pthread_create`'s error, such as
///   `EAGAIN` when the process has reached its thread limit). `body` never runs then: callers must not wait for it.
@discardableResult
package func startThread(_ body: @escaping @Sendable () -> Void) -> String? {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    let created = pthread_create(&thread, nil, { context in
        let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
        box.body()
        return nil
    }, context)
    if created == 0 {
        pthread_detach(thread)
        return nil
    }
    Unmanaged<Box>.fromOpaque(context).release()
    return String(cString: strerror(created))
}
