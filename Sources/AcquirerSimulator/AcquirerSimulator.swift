/// A card acquirer's test environment (filled in by the acquirer issue work).
public enum AcquirerSimulator {}
