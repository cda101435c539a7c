import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An exclusive lock on the key folder, held for every key-ring change (init, rotate, retire,
/// rotate-master), so that two such commands never interleave: a `rotate` that loaded the master
/// key before a `rotate-master` installed a new one would otherwise wrap its data key under the
/// old key (docs/CRYPTO.md §13.8).
///
/// An `flock(2)` on `.keyring.lock` beside the master key file. flock locks belong to the open
/// file description, so two holders in one process exclude each other as two processes do, and
/// the kernel releases the lock if the process dies. Where the key folder is read-only (a secret
/// mount), the lock file is in the data folder instead; the checks inside each key-ring
/// transaction do not depend on the lock.
public struct KeyRingLock: Sendable {
    /// The lock file's name, in the folder of the master key file (`Keys/.keyring.lock`).
    public static let fileName = ".keyring.lock"

    /// The lock file beside the master key.
    public let path: String
    /// The lock file used when ``path`` cannot be created.
    public let fallbackPath: String?

    /// The lock for the vault whose master key file is `masterKeyPath`.
    /// - Parameter fallbackDirectory: where to put the lock file if the master key's folder is
    ///   read-only (the data folder).
    public init(masterKeyPath: String, fallbackDirectory: String? = nil) {
        path = ((masterKeyPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent(
            Self.fileName)
        fallbackPath = fallbackDirectory.map { ($0 as NSString).appendingPathComponent(Self.fileName) }
    }

    /// A held lock, released by ``release()`` or when the value goes away.
    public final class Held: Sendable {
        private let descriptor: Mutex<Int32?>

        fileprivate init(descriptor: Int32) {
            self.descriptor = Mutex(descriptor)
        }

        /// Releases the lock (closing the file releases the flock).
        public func release() {
            if let open = descriptor.withLock({ $0.take() }) { close(open) }
        }

        deinit { release() }
    }

    /// Takes the lock if it is free; `nil` if someone holds it.
    public func tryAcquire() throws -> Held? {
        var (descriptor, lockPath) = (open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600), path)
        if descriptor < 0, [EROFS, EACCES, EPERM].contains(errno), let fallbackPath {
            (descriptor, lockPath) = (open(fallbackPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600), fallbackPath)
        }
        guard descriptor >= 0 else {
            throw VaultError(.keyRingLock, "cannot open the key-ring lock \(lockPath): errno \(errno)")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = errno
            close(descriptor)
            if error == EWOULDBLOCK { return nil }
            throw VaultError(.keyRingLock, "cannot lock \(lockPath): errno \(error)")
        }
        return Held(descriptor: descriptor)
    }

    /// Waits for the lock. Polls without blocking a thread, so an async caller never stalls the
    /// cooperative pool; key-ring changes are rare and short.
    public func acquire() async throws -> Held {
        while true {
            if let held = try tryAcquire() { return held }
            Self.foundHeld?()
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Called each time ``acquire()`` finds the lock held, so a test knows a caller is waiting
    /// for it instead of guessing how long that takes. Task-local: nothing to set in production.
    @TaskLocal static var foundHeld: (@Sendable () -> Void)?

    /// Runs `body` holding the lock.
    public func withLock<R>(_ body: () async throws -> R) async throws -> R {
        let held = try await acquire()
        defer { held.release() }
        return try await body()
    }
}
