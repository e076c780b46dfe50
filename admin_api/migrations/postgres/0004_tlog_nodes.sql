-- Transparency log: hashes of complete, aligned subtrees (level >= 1; level 0 is tlog_leaves), so tree heads and proofs read O(log n) rows. Written with the leaves; built for older logs by TransparencyRepo.backfill_tree_nodes.

CREATE TABLE tlog_nodes (
    log_id TEXT NOT NULL,
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hash   BYTEA NOT NULL,
    PRIMARY KEY (log_id, level, idx)
);
