-- 0001: the append-only, hash-chained event log.
-- Timestamps are UTC ISO-8601 strings of fixed width (2026-01-31T12:00:00.000000Z) so that
-- they hash, export and compare as text exactly. JSON columns hold JSON text (or NULL).
CREATE TABLE events (
    seq                BIGINT PRIMARY KEY,
    event_id           VARCHAR NOT NULL UNIQUE,
    ts                 VARCHAR NOT NULL,
    actor_id           VARCHAR NOT NULL,
    actor_role         VARCHAR NOT NULL,
    actor_name         VARCHAR NOT NULL,
    actor_source       VARCHAR NOT NULL,
    action             VARCHAR NOT NULL,
    model_id           VARCHAR,
    weights_sha_before VARCHAR,
    weights_sha_after  VARCHAR,
    dataset_hash       VARCHAR,
    intervention_id    VARCHAR,
    concept            VARCHAR,
    spec               VARCHAR,
    rationale          VARCHAR,
    evidence           VARCHAR,
    metric_deltas      VARCHAR,
    records            VARCHAR,
    project_version    VARCHAR NOT NULL,
    prev_hash          VARCHAR NOT NULL,
    hash               VARCHAR NOT NULL
);
