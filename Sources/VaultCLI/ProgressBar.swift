import Foundation

/// A one-line progress bar on standard error, drawn only when it is a terminal.
struct ProgressBar {
    let label: String
    let enabled: Bool
    private var lastDrawn = ContinuousClock.now - .seconds(1)

    init(label: String, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.label = label
        self.enabled = enabled
    }

    mutating func update(done: Int, total: Int, force: Bool = false) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard force || now - lastDrawn >= .milliseconds(100) || done == total else { return }
        lastDrawn = now
        let width = 30
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = "\r\(label) [\(bar)] \(Int(fraction * 100))% \(done)/\(total)"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
