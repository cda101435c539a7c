// swift-tools-version:6.2
// The module graph is the trust boundary (DESIGN §2): targets outside the
// cardholder-data environment (CDE) cannot import the targets inside it.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "card-vault",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vault", targets: ["vault"]),
        .library(name: "TokenVault", targets: ["TokenVault"]),
        .library(name: "VaultServer", targets: ["VaultServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // MARK: Cardholder-data environment
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"]), .brew(["libsodium"])]
        ),
        .target(name: "VaultCrypto", dependencies: ["CSodium"], swiftSettings: swiftSettings),
        .target(
            name: "Audit",
            dependencies: [
                "VaultCrypto", "CardTokens", "GroupCommit", "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TokenVault",
            dependencies: [
                "VaultCrypto", "Audit", "CardTokens", "GroupCommit", "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Detokenization",
            dependencies: [
                "TokenVault", "Audit", "CardTokens", "VaultCrypto", "SQLiteSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
        // Virtual cards issued inside the vault: PANs under the issuing BIN, unique in the vault,
        // and CVVs derived under the card-verification key, never stored (CRYPTO.md §21).
        .target(
            name: "CardIssuing",
            dependencies: [
                "TokenVault", "VaultCrypto", "CardTokens", "Audit", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // A card acquirer's test environment, run as its own process (`vault acquirer-sim`). It
        // receives PANs, so it sits with the CDE and nothing outside may reach it.
        .target(
            name: "AcquirerSimulator",
            dependencies: [
                "VaultCrypto", "CardTokens", "HTTPListener", "SQLiteSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Shared vocabulary and utilities (no CDE dependency)
        .target(name: "CardTokens", swiftSettings: swiftSettings),
        .target(name: "GroupCommit", swiftSettings: swiftSettings),
        // The SQLite plumbing every store shares: the one opener of database files (owner-only,
        // durable), statements driven through the C API on the hot paths, the millisecond times
        // the stores keep, and hex.
        .target(
            name: "SQLiteSupport",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // Connection limits and HTTP/1 edge cases for every listener (vault and acquirer-sim).
        .target(
            name: "HTTPListener",
            dependencies: [
                "CardTokens", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Outside the CDE: the wallet side sees tokens only
        .target(
            name: "Ledger",
            dependencies: [
                "CardTokens", "GroupCommit", "SQLiteSupport", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Wallet",
            dependencies: ["Ledger", "CardTokens", "SQLiteSupport", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),

        // Virtual cards by token: state, controls, authorization decisions (the vault issues them).
        .target(
            name: "Issuing",
            dependencies: [
                "Wallet", "Ledger", "CardTokens", "GroupCommit", "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Wiring
        .target(
            name: "VaultServer",
            dependencies: [
                "TokenVault", "CardTokens", "Audit", "Detokenization", "CardIssuing", "Ledger", "Wallet", "Issuing",
                "HTTPListener", .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "VaultCLI",
            dependencies: [
                "VaultServer", "TokenVault", "Audit", "CardTokens", "VaultCrypto", "Ledger", "Wallet",
                "AcquirerSimulator", "Detokenization", "HTTPListener",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(name: "vault", dependencies: ["VaultCLI"], swiftSettings: swiftSettings),

        // MARK: Tests
        // Helpers every test target may use: nothing of the CDE.
        .target(
            name: "VaultTestSupport",
            dependencies: [
                "CardTokens",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            path: "Tests/VaultTestSupport",
            swiftSettings: swiftSettings
        ),
        // Helpers for the suites of CDE code: a fresh vault, audit logs that fail or watch, audit checks.
        .target(
            name: "CDETestSupport",
            dependencies: [
                "VaultTestSupport", "TokenVault", "Audit", "Detokenization",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            path: "Tests/CDETestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "VaultCryptoTests", dependencies: ["VaultCrypto"], swiftSettings: swiftSettings),
        .testTarget(name: "CardTokensTests", dependencies: ["CardTokens"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GroupCommitTests", dependencies: ["GroupCommit", "VaultTestSupport"], swiftSettings: swiftSettings),
        // The opener and statements of SQLiteSupport, and the file modes of every database the
        // project opens through it (so it also reaches the stores that open them).
        .testTarget(
            name: "SQLiteSupportTests",
            dependencies: [
                "SQLiteSupport", "TokenVault", "Ledger", "AcquirerSimulator",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HTTPListenerTests",
            dependencies: [
                "HTTPListener", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LedgerTests",
            dependencies: [
                "VaultTestSupport", "Ledger", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WalletTests",
            dependencies: [
                "VaultTestSupport", "Wallet", "Ledger", "CardTokens", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IssuingTests",
            dependencies: [
                "VaultTestSupport", "Issuing", "Wallet", "Ledger", "CardTokens",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AcquirerSimulatorTests",
            dependencies: [
                "VaultTestSupport", "CDETestSupport",
                "AcquirerSimulator", "Detokenization", "TokenVault", "VaultCrypto", "Audit", "CardTokens",
                "HTTPListener",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TokenVaultTests",
            dependencies: [
                "VaultTestSupport",
                "TokenVault", "VaultCrypto", "Audit", "CardTokens", "SQLiteSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VaultServerTests",
            dependencies: [
                "VaultTestSupport", "CDETestSupport",
                "VaultServer", "TokenVault", "CardTokens", "Detokenization", "Audit", "Wallet", "Ledger",
                "AcquirerSimulator", "HTTPListener", "CardIssuing", "Issuing",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DetokenizationTests",
            dependencies: [
                "VaultTestSupport", "CDETestSupport",
                "Detokenization", "TokenVault", "Audit", "CardTokens",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CardIssuingTests",
            dependencies: [
                "VaultTestSupport", "CDETestSupport",
                "CardIssuing", "TokenVault", "VaultCrypto", "Audit", "CardTokens",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The `vault` executable run as child processes (in a test process of its own: Scripts/test).
        .testTarget(
            name: "VaultProcessTests", dependencies: ["VaultCLI", "VaultTestSupport"], swiftSettings: swiftSettings),
    ]
)
