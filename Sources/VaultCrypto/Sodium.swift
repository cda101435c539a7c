import CSodium

/// One-time libsodium initialisation, shared by every entry point of this module.
enum Sodium {
    /// `sodium_init` is idempotent and thread-safe, but we call it once through a lazy
    /// `static let` as swift-sodium does; failure means the library cannot give us randomness.
    private static let initialized: Void = {
        guard sodium_init() >= 0 else {
            fatalError("libsodium failed to initialise (no usable random source)")
        }
    }()

    @inline(__always)
    static func ensureInitialized() {
        _ = initialized
    }
}
