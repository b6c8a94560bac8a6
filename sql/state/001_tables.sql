-- State schema version 1: the tables every store holds.
--
-- Stores written before the schema_version table existed were created with these statements and
-- gained columns as levered grew; the ALTER statements bring any of them to version 1, and on a new
-- store they do nothing. Later versions are new files, applied in order (src/state/schema.rs).
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR NOT NULL,
    optimization VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    as_of TIMESTAMP NOT NULL,
    trained_at TIMESTAMP NOT NULL,
    seed UBIGINT NOT NULL,
    definition_hash VARCHAR NOT NULL,
    sql_hash VARCHAR NOT NULL,
    levered_version VARCHAR NOT NULL,
    duckdb_version VARCHAR NOT NULL,
    scan_mode VARCHAR NOT NULL,
    scan_from TIMESTAMP,
    final_until TIMESTAMP,
    first_exposure TIMESTAMP,
    newest_exposure TIMESTAMP,
    mature_units BIGINT NOT NULL,
    unmatched JSON NOT NULL,
    warnings JSON NOT NULL,
    winner_arm_id INTEGER,
    duration_ms BIGINT NOT NULL,
    outcome VARCHAR NOT NULL,
    error VARCHAR,
    diagnostics JSON,
    winner JSON,
    PRIMARY KEY (optimization, run_id)
);
CREATE TABLE IF NOT EXISTS batch_stats (
    optimization VARCHAR NOT NULL,
    batch_start TIMESTAMP NOT NULL,
    context VARCHAR NOT NULL,
    arm_id INTEGER NOT NULL,
    holdout BOOLEAN NOT NULL,
    units BIGINT NOT NULL,
    conversions BIGINT NOT NULL,
    value_sum DOUBLE NOT NULL,
    value_sq_sum DOUBLE NOT NULL,
    is_final BOOLEAN NOT NULL,
    run_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS arms (
    optimization VARCHAR NOT NULL,
    arm_id INTEGER NOT NULL,
    variant JSON NOT NULL,
    status VARCHAR NOT NULL,
    since TIMESTAMP NOT NULL,
    reason VARCHAR NOT NULL,
    started TIMESTAMP,
    initial BOOLEAN NOT NULL DEFAULT true,
    origin VARCHAR NOT NULL DEFAULT 'definition',
    PRIMARY KEY (optimization, arm_id)
);
CREATE TABLE IF NOT EXISTS arm_events (
    optimization VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    arm_id INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    reason VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS allocations (
    run_id VARCHAR NOT NULL,
    optimization VARCHAR NOT NULL,
    trained_at TIMESTAMP NOT NULL,
    context VARCHAR NOT NULL,
    arm_id VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    variant JSON NOT NULL,
    weight DOUBLE NOT NULL,
    status VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS arm_reports (
    run_id VARCHAR NOT NULL,
    optimization VARCHAR NOT NULL,
    context VARCHAR NOT NULL,
    arm_id VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    variant JSON NOT NULL,
    status VARCHAR NOT NULL,
    units BIGINT NOT NULL,
    conversions BIGINT NOT NULL,
    rate DOUBLE,
    alpha DOUBLE NOT NULL,
    beta DOUBLE NOT NULL,
    mean DOUBLE NOT NULL,
    ci_low DOUBLE NOT NULL,
    ci_high DOUBLE NOT NULL,
    p_best DOUBLE,
    expected_loss DOUBLE,
    weight_prev DOUBLE,
    weight_new DOUBLE,
    lift_vs_holdout DOUBLE,
    lift_ci_low DOUBLE,
    lift_ci_high DOUBLE
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS diagnostics JSON;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS winner JSON;
ALTER TABLE arms ADD COLUMN IF NOT EXISTS started TIMESTAMP;
ALTER TABLE arms ADD COLUMN IF NOT EXISTS initial BOOLEAN DEFAULT true;
ALTER TABLE arms ADD COLUMN IF NOT EXISTS origin VARCHAR DEFAULT 'definition';
