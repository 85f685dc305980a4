// swift-tools-version:6.0
import PackageDescription

/// agent-runner: a supervisor (`agent-runner`) that claims architecture jobs from
/// MongoDB and one sandboxed child (`agent-runner-job`) per job that generates,
/// validates, commits and pushes the codebase. See README.md and docs/.
/// Release executables link with lld and packed relative relocations (RELR,
/// glibc >= 2.36): a position-independent binary's relocation table shrinks
/// from megabytes to kilobytes, which the loader would otherwise read at every
/// start. Together with `--static-swift-stdlib` (see Makefile) this keeps the
/// idle supervisor small (README, Performance).
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(configuration: .release)),
]

let package = Package(
    name: "agent-runner",
    products: [
        .executable(name: "agent-runner", targets: ["Supervisor"]),
        .executable(name: "agent-runner-job", targets: ["JobChild"]),
        .executable(name: "agent-runner-dashboard", targets: ["Dashboard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        // The operators' web dashboard only (agent-runner-dashboard); the supervisor does not link it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // System libraries (Debian -dev packages).
        .systemLibrary(name: "CMongoC", pkgConfig: "libmongoc-1.0",
                       providers: [.apt(["libmongoc-dev", "libbson-dev"])]),
        .systemLibrary(name: "CGit2", pkgConfig: "libgit2", providers: [.apt(["libgit2-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        // RS256 for GitHub App JWTs (job child only, like libcurl).
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Tiny C shims: macros, variadics and fork/exec that Swift cannot express safely.
        .target(name: "CShims", dependencies: ["CSeccomp"]),
        // Typed wrappers for variadic libcurl and libgit2 calls, kept apart so that
        // only the job child links those libraries (the supervisor stays small).
        .target(name: "CCurlShims", dependencies: ["CCurl"]),
        .target(name: "CGitShims", dependencies: ["CGit2"]),

        // Shared model: configuration, job spec, child protocol, errors, redaction.
        .target(name: "RunnerCore", dependencies: ["CShims"]),
        // MongoDB job store over libmongoc.
        .target(name: "JobStore", dependencies: ["RunnerCore", "CMongoC"]),
        // Self-confinement of the job child: Landlock, seccomp, rlimits.
        .target(name: "Sandbox", dependencies: ["RunnerCore", "CShims", "CSeccomp"]),
        // Child* targets: linked only into agent-runner-job (the JobChild executable).
        // They block (libcurl, libgit2, poll, Thread.sleep), so no process that runs
        // Swift concurrency for the database may link them. A target can import
        // only what it declares here: `make` builds with
        // --explicit-target-dependency-import-check error, and ModuleGraphTests
        // checks both the graph and every target's imports (docs/architecture.md).
        // Spec/instructions builders, generators and the safe tree writer.
        // The one libcurl client (CurlEasy) of the job child's generators and the egress proxy.
        .target(name: "ChildHTTP", dependencies: ["CCurl", "CCurlShims"]),
        .target(name: "ChildGeneration", dependencies: ["RunnerCore", "CShims", "ChildHTTP", "COpenSSL"]),
        // The per-job egress proxy (agent-runner-job --egress-proxy) and the
        // socket helpers of the job child's forwarder.
        .target(name: "ChildEgressProxy", dependencies: ["RunnerCore", "CShims", "ChildHTTP"]),
        // Commit and push with libgit2; the pull request through GitHub's REST API (ChildHTTP).
        .target(name: "ChildPublishing", dependencies: ["RunnerCore", "CGit2", "CGitShims", "ChildHTTP"]),
        // The supervisor's machinery: claim loop, child processes, CLI helpers.
        .target(name: "SupervisorKit", dependencies: [
            "RunnerCore", "JobStore", "CShims",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        .executableTarget(name: "Supervisor", dependencies: [
            "SupervisorKit", "RunnerCore", "JobStore", "Sandbox",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], linkerSettings: releaseLinking),
        .executableTarget(name: "JobChild", dependencies: [
            "RunnerCore", "CShims", "Sandbox", "ChildGeneration", "ChildPublishing", "ChildEgressProxy",
        ], linkerSettings: releaseLinking),
        // The operators' web dashboard: its own executable, so the supervisor stays small.
        .target(name: "DashboardKit", dependencies: [
            "RunnerCore", "JobStore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "Dashboard", dependencies: [
            "DashboardKit", "RunnerCore", "JobStore", "SupervisorKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "DashboardTests", dependencies: [
            "DashboardKit", "RunnerCore", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "RunnerTests", dependencies: [
            "RunnerCore", "JobStore", "Sandbox", "ChildGeneration", "SupervisorKit", "ChildEgressProxy",
            // BSONConversionTests hold the store's BSON to libbson's own JSON reader and writer.
            "CMongoC",
            // SecurityInvariantTests give a thread a seccomp filter of its own.
            "CSeccomp",
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
