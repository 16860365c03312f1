// swift-tools-version: 6.2
// A package with its own agents and its own operator binary, depending on Troupe by path: what the README's
// "Your own agents, your own binary" shows. CI builds it and runs the binary (.ci/run).
import PackageDescription

let package = Package(
    name: "OwnOperator",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "troupe", path: "../../.."),
    ],
    targets: [
        .executableTarget(
            name: "own-troupe",
            dependencies: [
                .product(name: "Troupe", package: "troupe"),
                .product(name: "TroupeCLI", package: "troupe"),
            ],
            path: "Sources"
        ),
    ]
)
