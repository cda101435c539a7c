public import GRDB

extension DatabaseReader {
    /// Reads on the caller's thread, holding a reader connection only while `body` runs.
    ///
    /// GRDB's async `read` holds its reader until the awaiting task is resumed on a cooperative
    /// thread; a synchronous read blocks a cooperative thread until a reader is free. Mixed on one
    /// pool under load, every cooperative thread can end up waiting for a reader while every
    /// reader waits for a thread (a deadlock Scripts/bench found in `vault.db`). A pool read
    /// only this way never holds a reader across a suspension, so its waits always end.
    /// (A plain function, so that an async caller gets the synchronous `read`.)
    public func readInPlace<T>(_ body: (Database) throws -> T) throws -> T {
        try read(body)
    }
}
