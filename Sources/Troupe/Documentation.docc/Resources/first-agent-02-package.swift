// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "hello-agents",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "troupe", path: "/path/to/troupe"),
    ],
    targets: [
        // Your agents and blueprints: they depend on the engine only.
        .target(
            name: "HelloAgentsAgents",
            dependencies: [.product(name: "Troupe", package: "troupe")]
        ),
        // Your own `troupe`: every operator verb, with your blueprints.
        .executableTarget(
            name: "hello-agents",
            dependencies: ["HelloAgentsAgents", .product(name: "TroupeCLI", package: "troupe")]
        ),
        .testTarget(
            name: "HelloAgentsAgentsTests",
            dependencies: [
                "HelloAgentsAgents",
                .product(name: "Troupe", package: "troupe"),
                .product(name: "TroupeTestKit", package: "troupe"),
            ]
        ),
    ]
)
