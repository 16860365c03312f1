public import Troupe

extension AgentContext {
    /// The run's HTTP client: the ``HTTPClient`` in its `Run.Configuration.services`.
    ///
    /// - Important: Add one when building the run — `Run.Configuration(services: [client])` — and run the client in
    ///   the same `ServiceGroup`, so that it shuts down with the tree.
    public var http: HTTPClient {
        guard let client = service(HTTPClient.self) else {
            preconditionFailure(
                "agent '\(name)' used context.http, but the run has no HTTPClient: pass one in Run.Configuration(services:)"
            )
        }
        return client
    }
}
