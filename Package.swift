// swift-tools-version: 6.2
import PackageDescription

/// Applied to every target: Swift 6 mode plus the upcoming features the project is written against.
let settings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "troupe",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Troupe", targets: ["Troupe"]),
        .library(name: "TroupeSQLite", targets: ["TroupeSQLite"]),
        .library(name: "TroupePostgres", targets: ["TroupePostgres"]),
        .library(name: "TroupeHTTP", targets: ["TroupeHTTP"]),
        .library(name: "TroupeHTTPTesting", targets: ["TroupeHTTPTesting"]),
        .library(name: "TroupeTestKit", targets: ["TroupeTestKit"]),
        .library(name: "TroupeCLI", targets: ["TroupeCLI"]),
        .library(name: "TroupeConsole", targets: ["TroupeConsole"]),
        .library(name: "TroupeOTel", targets: ["TroupeOTel"]),
        .library(name: "TroupeAgents", targets: ["TroupeAgents"]),
        .executable(name: "troupe", targets: ["TroupeExecutable"]),
        .executable(name: "troupe-bench", targets: ["TroupeBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // The console's web server and Prometheus exposition: only TroupeConsole links them.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // The OpenTelemetry exporter of `--otlp-endpoint`: only TroupeOTel links it. OTLP over HTTP only; the gRPC
        // exporter would add grpc-swift to every build of the binary.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // The engine: agents, mailboxes, supervision. Imports no C module.
        .target(
            name: "Troupe",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // No-op unless the process bootstraps a backend (`troupe serve`, `troupe run --metrics`).
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: settings
        ),
        // The system libsqlite3 (Debian: libsqlite3-dev).
        .systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // Durable storage on SQLite: connection, migrations (embedded from migrations/), the SQLite store.
        .target(
            name: "TroupeSQLite",
            dependencies: [
                "Troupe",
                "CSQLite",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: [],
            resources: [.embedInCode("Migrations")],
            swiftSettings: settings
        ),
        // The system libpq (Debian: libpq-dev). Chosen over postgres-nio: pipeline mode, server-side cancel
        // (`PQcancel`, for the cancellation ladder) and LISTEN on a connection of the store's own thread, with no
        // build cost (postgres-nio and SwiftNIO add minutes to a cold build and cancel only client-side).
        .systemLibrary(name: "CPostgres", providers: [.apt(["libpq-dev"])]),
        // Durable storage on PostgreSQL: the same store contract as SQLite, shared by processes on many hosts.
        .target(
            name: "TroupePostgres",
            dependencies: ["Troupe", "CPostgres"],
            resources: [.embedInCode("Migrations")],
            swiftSettings: settings
        ),
        // The system libcurl (Debian: libcurl4-openssl-dev), with typed wrappers for its variadic functions.
        .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // HTTP for agents: an async client over libcurl's multi interface, and a loopback server for tests and demos.
        .target(
            name: "TroupeHTTP",
            dependencies: [
                "Troupe",
                "CCurl",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // A loopback HTTP server with scripted faults, for tests, benchmarks and offline demos (never production).
        .target(
            name: "TroupeHTTPTesting",
            dependencies: ["Troupe"],
            swiftSettings: settings
        ),
        // Public helpers for testing agents: a manual clock, an agent probe, event recording.
        .target(
            name: "TroupeTestKit",
            dependencies: ["Troupe", .product(name: "Logging", package: "swift-log")],
            swiftSettings: settings
        ),
        // Example agents: the tutorial's patterns, written against the public API only.
        .target(
            name: "TroupeAgents",
            dependencies: [
                "Troupe",
                "TroupeHTTP",
                "TroupeHTTPTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "agents",
            swiftSettings: settings
        ),
        // The operator CLI as a library, so other packages can build their own `troupe`. It talks to stores through
        // the engine's protocols only; SQLite is linked as the default backend. No gallery, no libcurl.
        .target(
            name: "TroupeCLI",
            dependencies: [
                "Troupe",
                "TroupeSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // `troupe serve` (the web console and its JSON API) and the Prometheus endpoint of `troupe run --metrics`.
        // Its own target: Hummingbird and SwiftNIO cost minutes of a cold build that the engine, the CLI's other
        // verbs and their tests don't pay.
        .target(
            name: "TroupeConsole",
            dependencies: [
                "Troupe",
                "TroupeCLI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("Assets")],
            swiftSettings: settings
        ),
        // `--otlp-endpoint`: the runs' spans exported with OpenTelemetry (swift-otel, OTLP over HTTP). Its own
        // target: swift-otel, async-http-client and swift-protobuf cost minutes of a cold build.
        .target(
            name: "TroupeOTel",
            dependencies: [
                "TroupeCLI",
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        // The `troupe` binary: the CLI plus the gallery of `agents/` and the demo.
        .executableTarget(
            name: "TroupeExecutable",
            dependencies: [
                "TroupeCLI",
                "TroupeConsole",
                "TroupeOTel",
                "Troupe",
                "TroupePostgres",
                "TroupeAgents",
                "TroupeHTTP",
                "TroupeHTTPTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // Release-build benchmarks: one `name value unit` line per figure.
        .executableTarget(
            name: "TroupeBench",
            dependencies: [
                "Troupe",
                "TroupeSQLite",
                "TroupePostgres",
                "TroupeCLI",
                "TroupeHTTP",
                "TroupeHTTPTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TroupeTests",
            dependencies: [
                "Troupe",
                "TroupeTestKit",
                "TroupeTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: settings
        ),
        // The crash test's subject: a durable counting pipeline that the test kills with SIGKILL and resumes.
        .executableTarget(
            name: "CrashPipeline",
            dependencies: ["Troupe", "TroupeSQLite", "TroupePostgres", "TroupeAgents"],
            path: "Tests/CrashPipeline",
            swiftSettings: settings
        ),
        // Helpers shared by the test targets that start processes (not a product).
        .target(
            name: "TroupeTestSupport",
            dependencies: ["TroupeTestKit"],
            path: "Tests/Support",
            swiftSettings: settings
        ),
        .testTarget(
            name: "TroupeSQLiteTests",
            dependencies: ["TroupeSQLite", "Troupe", "TroupeTestKit", "TroupeTestSupport"],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TroupePostgresTests",
            dependencies: ["TroupePostgres", "Troupe", "TroupeTestKit", "TroupeTestSupport", "TroupeHTTPTesting"],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TroupeHTTPTests",
            dependencies: [
                "TroupeHTTP", "TroupeHTTPTesting", "Troupe", "TroupeTestKit",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TroupeAgentsTests",
            dependencies: ["TroupeAgents", "TroupeTestKit", "Troupe", "TroupeHTTP", "TroupeHTTPTesting"],
            swiftSettings: settings
        ),
        // The console, through the `troupe` binary: its API over HTTP, and its pages in headless Chromium; and the
        // binary's OpenTelemetry export.
        .testTarget(
            name: "TroupeConsoleTests",
            dependencies: ["TroupeHTTP", "TroupeHTTPTesting", "TroupeTestKit", "TroupeTestSupport"],
            exclude: ["browser.py"],
            swiftSettings: settings
        ),
        .testTarget(
            name: "TroupeCLITests",
            dependencies: [
                "TroupeCLI",
                "TroupeSQLite",
                "Troupe",
                "TroupeTestKit",
                "TroupeTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
    ]
)
