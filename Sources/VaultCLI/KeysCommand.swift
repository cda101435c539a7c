import ArgumentParser
import Foundation
import TokenVault

/// `vault keys …`: the key life cycle.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, rotate, re-encrypt under, retire and inspect encryption keys.",
        discussion: "Every key action is appended to the audit log.",
        subcommands: [
            Init.self, Rotate.self, Rewrap.self, Status.self, Retire.self, RotateMaster.self, RotateRoot.self,
            RotateCVK.self,
        ])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the master key (mode 0600) and the first data key, where absent.",
            discussion: "Never overwrites a key. Running it again when both exist says so and exits 0.")

        @OptionGroup var storage: StorageOptions

        func run() async throws {
            try await CLI.run {
                let paths = storage.paths
                let result = try await Vault.initialize(paths: paths, logger: CLI.logger())
                switch (result.createdMasterKey, result.createdKeyRing) {
                case (false, false):
                    print(
                        "Master key \(paths.masterKeyPath) and the key ring in \(paths.dataDirectory) both exist; nothing to do."
                    )
                case (true, _):
                    print(
                        "Created master key \(paths.masterKeyPath) (mode 0600). Keep it apart from the data folder and back it up."
                    )
                    print("Created the key ring in \(paths.dataDirectory)/vault.db with data key v1 active.")
                case (false, true):
                    print(
                        "Master key \(paths.masterKeyPath) exists; created the key ring in \(paths.dataDirectory)/vault.db with data key v1 active."
                    )
                }
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new data key the active one; the previous becomes decrypt-only.",
            discussion: "A running `vault serve` encrypts under the new version within seconds, without a restart.")

        @OptionGroup var storage: StorageOptions
        @Flag(help: "Print {\"active_version\": N}.") var json = false

        func run() async throws {
            try await CLI.run {
                let version = try await CLI.opened(storage, logger: CLI.logger()).keys.rotate()
                if json {
                    try CLI.printJSON(["active_version": version])
                } else {
                    print("Data key v\(version) is now active. Run `vault keys rewrap` to re-encrypt older records.")
                }
            }
        }
    }

    struct Rewrap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-encrypt every card record still under an older data key with the active one.",
            discussion: """
                Runs online in batches (the server keeps serving); safe to interrupt and run again. Plaintext never \
                leaves this process. Shows a progress bar on a terminal. Held CVVs are not under data keys (they are \
                sealed under short-lived keys the server holds in memory only) and are left alone. At the end the \
                WAL (vault.db-wal) is checkpointed and truncated, so the old ciphertexts are not left in it.
                """)

        @OptionGroup var storage: StorageOptions
        @Option(help: "Records per transaction.") var batchSize: Int = 5000
        @Flag(help: "Print {\"rewrapped\": N}.") var json = false

        func validate() throws {
            guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        }

        func run() async throws {
            try await CLI.run {
                let vault = try await CLI.opened(storage, logger: CLI.logger())
                var bar = ProgressBar(label: "rewrap", enabled: !json && isatty(STDERR_FILENO) == 1)
                let count = try await vault.keys.rewrap(batchSize: batchSize) { done, total in
                    bar.update(done: done, total: total)
                }
                bar.finish()
                if json {
                    try CLI.printJSON(["rewrapped": count])
                } else {
                    print("Re-encrypted \(count) record(s) under data key v\(vault.keyRing.active.version).")
                }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show data-key versions, states, ages, record counts and whether rotation is overdue.")

        @OptionGroup var storage: StorageOptions
        @Option(help: "How many days a data key may stay active (cryptoperiod).") var cryptoperiodDays: Int = 90
        @Flag(help: "Print the status as JSON.") var json = false

        struct Output: Encodable {
            struct Version: Encodable {
                var version: UInt32
                var state: String
                var createdAt: Date
                var records: Int
            }
            struct RootVersion: Encodable {
                var version: UInt32
                var createdAt: Date
                var fingerprints: Int
                var credentialHashes: Int
            }
            var activeVersion: UInt32
            var versions: [Version]
            var activeRootVersion: UInt32
            var rootVersions: [RootVersion]
            /// Newest last: the one new cards are issued under.
            var cardVerificationKeys: [CardVerificationKeyStatus]
            var cryptoperiodOverdue: Bool
            var cryptoperiodDays: Int
        }

        func validate() throws {
            guard cryptoperiodDays > 0 else { throw ValidationError("--cryptoperiod-days must be positive") }
        }

        func run() async throws {
            try await CLI.run {
                let status = try await CLI.opened(storage, logger: CLI.logger()).keys.status(
                    cryptoperiodDays: cryptoperiodDays)
                let output = Output(
                    activeVersion: status.activeVersion,
                    versions: status.versions.map {
                        .init(
                            version: $0.version, state: $0.state.rawValue, createdAt: $0.createdAt, records: $0.records)
                    },
                    activeRootVersion: status.activeRootVersion,
                    rootVersions: status.rootVersions.map {
                        .init(
                            version: $0.version, createdAt: $0.createdAt, fingerprints: $0.fingerprints,
                            credentialHashes: $0.credentialHashes)
                    },
                    cardVerificationKeys: status.cardVerificationKeys,
                    cryptoperiodOverdue: status.cryptoperiodOverdue, cryptoperiodDays: status.cryptoperiodDays)
                guard !json else { return try CLI.printJSON(output) }
                let formatter = ISO8601DateFormatter()
                print("VERSION  STATE         CREATED               AGE(d)  RECORDS")
                for version in output.versions {
                    let age = Int(Date().timeIntervalSince(version.createdAt) / 86_400)
                    print(
                        String(version.version).padding(toLength: 9, withPad: " ", startingAt: 0)
                            + version.state.padding(toLength: 14, withPad: " ", startingAt: 0)
                            + formatter.string(from: version.createdAt).padding(
                                toLength: 22, withPad: " ", startingAt: 0)
                            + String(age).padding(toLength: 8, withPad: " ", startingAt: 0) + String(version.records))
                }
                print(
                    output.cryptoperiodOverdue
                        ? "Active key v\(output.activeVersion) is older than \(cryptoperiodDays) days: run `vault keys rotate`."
                        : "Active key v\(output.activeVersion) is within its \(cryptoperiodDays)-day cryptoperiod.")
                print("")
                print("ROOT     CREATED               FINGERPRINTS  CREDENTIAL HASHES")
                for root in output.rootVersions {
                    print(
                        String(root.version).padding(toLength: 9, withPad: " ", startingAt: 0)
                            + formatter.string(from: root.createdAt).padding(toLength: 22, withPad: " ", startingAt: 0)
                            + String(root.fingerprints).padding(toLength: 14, withPad: " ", startingAt: 0)
                            + String(root.credentialHashes))
                }
                let pending = output.rootVersions.filter {
                    $0.version != output.activeRootVersion && $0.fingerprints + $0.credentialHashes > 0
                }
                if !pending.isEmpty {
                    print(
                        "Root key v\(output.activeRootVersion) is active; older versions still made some values: "
                            + "`vault keys rewrap` moves fingerprints, and each API key's next use moves its hash.")
                }
                print("")
                guard let newest = output.cardVerificationKeys.last else {
                    return print("No card-verification key yet: the first card issued creates v1.")
                }
                print("CVK      CREATED               ISSUED CARDS")
                for key in output.cardVerificationKeys {
                    print(
                        String(key.version).padding(toLength: 9, withPad: " ", startingAt: 0)
                            + formatter.string(from: key.createdAt).padding(toLength: 22, withPad: " ", startingAt: 0)
                            + String(key.issuedCards))
                }
                print("New cards are issued under card-verification key v\(newest.version); each card keeps its own.")
            }
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire an old data key version: delete its wrapped key so it never decrypts again.",
            discussion: """
                Refuses (exit 1) while any card record is encrypted under it, and for the active version. The wrapped \
                key is deleted from vault.db (zeroed there by secure_delete) and the WAL (vault.db-wal) is then \
                checkpointed and truncated, so no copy is left in the vault's files. Copies made before (backups, \
                snapshots) and blocks the file system has not reused are outside the vault's reach: with the master \
                key they still open the retired key. See docs/CRYPTO.md §13.5.
                """)

        @OptionGroup var storage: StorageOptions
        @Option(help: "The data key version to retire.") var version: UInt32

        func run() async throws {
            try await CLI.run {
                let truncated = try await CLI.opened(storage, logger: CLI.logger()).keys.retire(version: version)
                if truncated {
                    print(
                        "Data key v\(version) is retired: its wrapped key is deleted from vault.db and its WAL. "
                            + "Backups made before still hold it.")
                } else {
                    print(
                        "Data key v\(version) is retired: its wrapped key is deleted from vault.db, but readers kept "
                            + "the WAL busy and a copy remains in vault.db-wal until the next checkpoint "
                            + "(a running server truncates it within 30 seconds).")
                }
            }
        }
    }

    struct RotateCVK: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-cvk",
            abstract: "Add a card-verification key version: cards issued from now on derive their CVV under it.",
            discussion: """
                Each issued card records the card-verification key version it was issued under, so the CVVs of \
                cards already issued never change (docs/CRYPTO.md §21). Older versions stay wrapped in vault.db for \
                as long as cards use them. A running `vault serve` issues under the new version from its next card.
                """)

        @OptionGroup var storage: StorageOptions
        @Flag(help: "Print {\"cvk_version\": N}.") var json = false

        func run() async throws {
            try await CLI.run {
                let version = try await CLI.opened(storage, logger: CLI.logger()).keys.rotateCardVerificationKey()
                if json {
                    try CLI.printJSON(["cvk_version": version])
                } else {
                    print("Card-verification key v\(version) is now the one new cards are issued under.")
                }
            }
        }
    }

    struct RotateRoot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-root",
            abstract:
                "Add a new root key version (and a new data key) so that every key derived from the root changes.",
            discussion: """
                The root key derives the PAN fingerprint, caller-fingerprint, API-credential hash, audit MAC and row                 MAC keys (docs/CRYPTO.md §6). In one transaction this adds root version N+1 and a new active data                 key, re-seals every credential, data-key and vault_meta row under the new row key, and starts a new                 audit-log segment under the new audit key, bound to the previous segment. Afterwards run `vault                 keys rewrap`: it re-encrypts every record and re-computes its fingerprint under the new version.                 Each API key's hash moves to the new version when the key next authenticates; `vault keys status`                 shows what still depends on older versions. Older root versions stay wrapped in vault.db: the audit                 log's older segments are verified with them. A running `vault serve` takes the new version within                 about a second. See docs/CRYPTO.md §13.9 and docs/THREAT_MODEL.md.
                """)

        @OptionGroup var storage: StorageOptions
        @Flag(help: "Print {\"root_version\": N, \"active_version\": M, \"resealed_credentials\": [ids]}.")
        var json = false

        func run() async throws {
            try await CLI.run {
                let rotation = try await CLI.opened(storage, logger: CLI.logger()).keys.rotateRoot()
                struct Output: Encodable {
                    var rootVersion: UInt32
                    var activeVersion: UInt32
                    var resealedCredentials: [String]
                }
                if json {
                    try CLI.printJSON(
                        Output(
                            rootVersion: rotation.root, activeVersion: rotation.dataKey,
                            resealedCredentials: rotation.resealedCredentials))
                } else {
                    print(
                        "Root key v\(rotation.root) and data key v\(rotation.dataKey) are now active. "
                            + "Run `vault keys rewrap` to re-encrypt and re-fingerprint every record.")
                    print(
                        "Re-sealed \(rotation.resealedCredentials.count) active API credential(s): "
                            + rotation.resealedCredentials.joined(separator: ", "))
                    print(
                        "A credential row forged with the old root key would have been re-sealed too: check each id "
                            + "against your records, and re-issue and revoke any you cannot account for.")
                }
            }
        }
    }

    struct RotateMaster: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-master",
            abstract: "Re-wrap every data key under a new master key and install that key.",
            discussion: """
                FILE must hold exactly 32 random bytes with mode 0600 (e.g. `head -c 32 /dev/urandom > new.key; \
                chmod 600 new.key`). After success the key is installed as the vault's master key file and the \
                current vault.db no longer opens with the old key. The old key still opens every copy of vault.db \
                made before (backups, snapshots, replicas), and the root and data keys themselves are unchanged: \
                after a suspected key compromise also run `vault keys rotate-root`, `rewrap` and `retire`, and \
                destroy the old copies (see docs/THREAT_MODEL.md, "Response to a master-key compromise"). Delete \
                FILE securely afterwards.
                """)

        @OptionGroup var storage: StorageOptions
        @Option(help: "The new master key file.") var newMasterKey: String

        func run() async throws {
            try await CLI.run {
                let vault = try await CLI.opened(storage, logger: CLI.logger())
                try await vault.rotateMaster(newKeyPath: newMasterKey)
                print(
                    "Every key is re-wrapped under the new master key, now installed at \(vault.paths.masterKeyPath).")
                print("Securely delete \(newMasterKey) once the new key is backed up.")
            }
        }
    }
}
