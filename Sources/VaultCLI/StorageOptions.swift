import ArgumentParser
import Audit
import Foundation
import Logging
import TokenVault
import VaultCrypto

/// Options every command takes: where the data and the keys are.
struct StorageOptions: ParsableArguments {
    @Option(help: "The data folder holding vault.db.")
    var dataDir: String = "./data"

    @Option(help: "The folder holding master.key (never inside the data folder in production).")
    var keysDir: String = "./Keys"

    @Option(help: "The master key file, if not <keys-dir>/master.key. Also read from VAULT_MASTER_KEY_FILE.")
    var masterKey: String?

    var paths: VaultPaths {
        VaultPaths(
            dataDirectory: dataDir, keysDirectory: keysDir,
            masterKeyPath: masterKey ?? ProcessInfo.processInfo.environment["VAULT_MASTER_KEY_FILE"])
    }
}

/// Output shared by the commands.
enum CLI {
    /// A logger to standard error. Commands log warnings only unless asked for more.
    static func logger(level: Logger.Level = .warning) -> Logger {
        var logger = Logger(label: "vault") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = level
        return logger
    }

    /// Runs `body`, turning the vault's errors into one line on standard error and exit code 1.
    static func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as MasterKeyError {
            fail(error.description)
        } catch let error as VaultError {
            fail(error.message)
        } catch let error as AuditLogError {
            fail(error.message)
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        }
    }

    /// ``ProcessHardening/apply()`` for a long-running command that holds keys or card data;
    /// exits when the process cannot be hardened rather than run without it.
    static func harden() {
        do {
            try ProcessHardening.apply()
        } catch {
            fail("cannot disable core dumps and tracing: \(error)")
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Foundation.exit(1)
    }

    /// Prints `value` as one line of JSON (snake_case keys, ISO 8601 dates).
    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func opened(_ storage: StorageOptions, logger: Logger) async throws -> Vault {
        try await Vault.open(paths: storage.paths, logger: logger)
    }
}
