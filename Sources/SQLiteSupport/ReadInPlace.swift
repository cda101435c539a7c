public import GRDB

extension DatabaseReader {
    /// Reads on the caller's thread, holding a reader connection only while `body` runs.
    ///
    /// GRDB's async `read` holds its reader until the awaiting task is resumed on a cooperative
    /// thread; a synchronous read blocks a cooperative thread until a reader is free. Mixed on one
    /// pool under load, every cooperative thread can end up waiting for a reader while every
    /// reader waits for a thread (a deadlock Scripts/bench found in `vault.db`). Every read of
    /// the project's databases goes this way, so no reader is held across a suspension and every
    /// wait ends; it also saves the hop to the reader's queue and back, most of the cost of a
    /// point lookup. (A plain function, so that an async caller gets the synchronous `read`.)
    public func readInPlace<T>(_ body: (Database) throws -> T) throws -> T {
        try read(body)
    }
}
