import GRDB

/// The ledger's tables in `wallet.db`.
///
/// - `ledger_accounts`: one row per account, keyed by its id; `num` is an internal number
///   (creation order) that keys the postings.
/// - `ledger_transfers`: one row per transfer made, in `seq` order (never updated except for
///   the `state` of a pending transfer, which leaves `pending` exactly once).
/// - `ledger_postings`: two rows per transfer, (account number, seq) for its debit and its
///   credit account: the index of statements. It replaces two indexes of `ledger_transfers`
///   on (debit_account, seq) and (credit_account, seq): an account's debits and credits share
///   the pages at the end of its range, and integer keys are smaller, so a commit dirties (and
///   writes to the WAL) about half the index pages it did.
enum LedgerSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("ledger.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ledger_accounts (
                        id TEXT PRIMARY KEY,
                        currency TEXT NOT NULL,
                        flags INTEGER NOT NULL,
                        debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
                        credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
                        debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
                        credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
                        created_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX ledger_accounts_currency ON ledger_accounts(currency);
                    CREATE TABLE ledger_transfers (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        debit_account TEXT NOT NULL REFERENCES ledger_accounts(id),
                        credit_account TEXT NOT NULL REFERENCES ledger_accounts(id),
                        amount INTEGER NOT NULL CHECK (amount >= 0),
                        currency TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void', 'expire')),
                        pending_id TEXT,
                        expires_at_ms INTEGER,
                        state TEXT CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX ledger_transfers_debit ON ledger_transfers(debit_account, seq);
                    CREATE INDEX ledger_transfers_credit ON ledger_transfers(credit_account, seq);
                    CREATE INDEX ledger_transfers_open ON ledger_transfers(expires_at_ms) WHERE state = 'pending';
                    """)
        }
        // Both tables rebuilt with the same data and constraints, plus account numbers and the
        // postings:
        // - CHECKs spelled as chains of `=`: SQLite checks `x IN ('a', 'b', 'c')` (more than two
        //   values) by building a temporary b-tree of the list on every execution of the
        //   statement, which cost about 4 µs per transfer inserted or released.
        // - `ledger_postings` instead of the two statement indexes (see the type's documentation).
        // - No index on `ledger_accounts(currency)`: no query needs it (the full check scans all).
        // Foreign keys are off during a migration and checked at its end (GRDB's default); the
        // invariants are checked in SQL before the migration commits.
        migrator.registerMigration("ledger.v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ledger_accounts_v2 (
                        id TEXT PRIMARY KEY,
                        num INTEGER NOT NULL UNIQUE,
                        currency TEXT NOT NULL,
                        flags INTEGER NOT NULL,
                        debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
                        credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
                        debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
                        credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
                        created_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    INSERT INTO ledger_accounts_v2 (id, num, currency, flags, debits_posted, credits_posted,
                        debits_pending, credits_pending, created_at_ms)
                    SELECT id, row_number() OVER (ORDER BY created_at_ms, id), currency, flags, debits_posted,
                        credits_posted, debits_pending, credits_pending, created_at_ms
                    FROM ledger_accounts;
                    CREATE TABLE ledger_transfers_v2 (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        debit_account TEXT NOT NULL REFERENCES ledger_accounts(id),
                        credit_account TEXT NOT NULL REFERENCES ledger_accounts(id),
                        amount INTEGER NOT NULL CHECK (amount >= 0),
                        currency TEXT NOT NULL,
                        kind TEXT NOT NULL
                            CHECK (kind = 'single' OR kind = 'pending' OR kind = 'post' OR kind = 'void' OR kind = 'expire'),
                        pending_id TEXT,
                        expires_at_ms INTEGER,
                        state TEXT CHECK (state = 'pending' OR state = 'posted' OR state = 'voided' OR state = 'expired'),
                        created_at_ms INTEGER NOT NULL
                    );
                    INSERT INTO ledger_transfers_v2 (seq, id, debit_account, credit_account, amount, currency, kind,
                        pending_id, expires_at_ms, state, created_at_ms)
                    SELECT seq, id, debit_account, credit_account, amount, currency, kind, pending_id, expires_at_ms,
                        state, created_at_ms
                    FROM ledger_transfers;
                    DROP TABLE ledger_transfers;
                    DROP TABLE ledger_accounts;
                    ALTER TABLE ledger_accounts_v2 RENAME TO ledger_accounts;
                    ALTER TABLE ledger_transfers_v2 RENAME TO ledger_transfers;
                    CREATE INDEX ledger_transfers_open ON ledger_transfers(expires_at_ms) WHERE state = 'pending';
                    CREATE TABLE ledger_postings (
                        account INTEGER NOT NULL,
                        seq INTEGER NOT NULL,
                        PRIMARY KEY (account, seq)
                    ) WITHOUT ROWID;
                    INSERT INTO ledger_postings (account, seq)
                    SELECT a.num, t.seq FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.debit_account
                    UNION ALL
                    SELECT a.num, t.seq FROM ledger_transfers t JOIN ledger_accounts a ON a.id = t.credit_account;
                    """)
            // Commits check the zero sums incrementally from here on, so the start must be right.
            try SQLiteLedger.checkInvariants(db)
            try SQLiteLedger.checkPostings(db)
        }
        return migrator
    }
}
