import Glibc

/// Starts a detached POSIX thread running `body`, for the package's long-lived loops (the SQLite writer, the curl
/// loop, the loopback server's connections). They block in C calls, so they must not sit on Swift's cooperative
/// pool; and Dispatch starts threads for queues lazily and caps them, which measured as seconds of delay before
/// such a loop ran when many were blocked at once.
package func startThread(_ body: @escaping @Sendable () -> Void) {
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
    } else {
        Unmanaged<Box>.fromOpaque(context).release()
    }
}
