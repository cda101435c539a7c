import Foundation
import Synchronization
import VaultCrypto

/// The keys that encrypt held CVVs: crypto-shredding (PCI DSS 3.3.1.2).
///
/// SQLite cannot promise that a deleted row is gone from every file: a copy can sit in
/// `vault.db-wal` until a checkpoint, and the file system may keep old blocks. So a CVV is not
/// sealed under a data key (which the master key and `vault.db` would give back) but under the
/// key of the current *epoch*: 32 random bytes that live only in this process's guarded memory,
/// are never wrapped, stored or derivable, and are dropped once the epoch has ended and a whole
/// time to live has passed. Every CVV a key sealed has expired by then, and every copy of it,
/// wherever it survives, stops opening for good. A restart drops every key: CVVs held by an
/// earlier process are no longer held.
///
/// An epoch id is `instance ‖ index` (u32 each): `instance` is random per process (below 2³¹,
/// so the id is a positive SQLite integer), `index` counts epochs from the first use, so ids of
/// another process, or of this one before a restart, never name a key held here.
final class CVVEpochKeys: Sendable {
    /// How long a CVV is held.
    let timeToLive: TimeInterval
    /// How long one key seals new CVVs; each key lives `epochLength + timeToLive` at most.
    let epochLength: TimeInterval
    /// The high half of this process's epoch ids.
    let instance: UInt64

    private struct Epoch {
        var key: SecretBytes
        /// When every CVV it sealed has expired: the end of the epoch plus the time to live.
        var destroyAt: Date
    }

    private struct State {
        var origin: Date?
        /// Never decreases, so an index whose key was destroyed is never given a new key
        /// (its old envelopes would then fail authentication instead of reading as not held).
        var current: UInt32 = 0
        var epochs: [UInt32: Epoch] = [:]
    }

    private let state = Mutex(State())

    /// - Parameter epochLength: a quarter of the time to live unless given (tests use others).
    init(timeToLive: TimeInterval, epochLength: TimeInterval? = nil) {
        self.timeToLive = timeToLive
        self.epochLength = max(epochLength ?? timeToLive / 4, 0.001)
        instance = UInt64(UInt32.random(in: 1...0x7FFF_FFFF)) << 32
    }

    /// The key that seals a CVV taken in at `now`, and the id of its epoch.
    func sealingKey(at now: Date) -> (epoch: UInt64, key: SecretBytes) {
        state.withLock { state in
            let index = advance(&state, to: now)
            if let epoch = state.epochs[index] { return (instance | UInt64(index), epoch.key) }
            let origin = state.origin ?? now
            let end = origin.addingTimeInterval(Double(index) * epochLength + epochLength)
            let key = SecretBytes(randomCount: SecretBox.keyByteCount)
            state.epochs[index] = Epoch(key: key, destroyAt: max(end, now).addingTimeInterval(timeToLive))
            return (instance | UInt64(index), key)
        }
    }

    /// The key of `epoch`, or `nil` if this process never made it or has destroyed it.
    func key(for epoch: UInt64, at now: Date) -> SecretBytes? {
        guard epoch & 0xFFFF_FFFF_0000_0000 == instance else { return nil }
        return state.withLock { state in
            advance(&state, to: now)
            return state.epochs[UInt32(truncatingIfNeeded: epoch)]?.key
        }
    }

    /// Whether a CVV sealed in `epoch` can still be opened here.
    func holds(_ epoch: UInt64, at now: Date) -> Bool { key(for: epoch, at: now) != nil }

    /// Destroys the keys whose CVVs have all expired by `now`; returns how many.
    @discardableResult
    func destroyExpired(at now: Date) -> Int {
        state.withLock { state in
            let before = state.epochs.count
            advance(&state, to: now)
            return before - state.epochs.count
        }
    }

    /// The number of keys held (for tests and status).
    var count: Int { state.withLock { $0.epochs.count } }

    /// Moves the current index up to `now` and drops the keys past their time. Dropping the
    /// last reference frees the key with `sodium_free`, which zeroes it; a key is not wiped in
    /// place, because a concurrent open may still be reading it (its CVV has expired anyway).
    @discardableResult
    private func advance(_ state: inout State, to now: Date) -> UInt32 {
        let origin = state.origin ?? now
        state.origin = origin
        let elapsed = now.timeIntervalSince(origin) / epochLength
        let index = elapsed <= 0 ? 0 : UInt32(min(elapsed.rounded(.down), Double(UInt32.max - 1)))
        state.current = max(state.current, index)
        if state.epochs.values.contains(where: { $0.destroyAt <= now }) {
            state.epochs = state.epochs.filter { $0.value.destroyAt > now }
        }
        return state.current
    }
}
