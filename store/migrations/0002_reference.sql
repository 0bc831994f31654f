-- 0002: append-only reference tables. Every row belongs to the event that recorded it
-- (event_seq, row_no); that event's `records` column holds the sha256 of the rows, so the
-- chain covers these tables too.
CREATE TABLE models (
    model_id       VARCHAR PRIMARY KEY,
    architecture   VARCHAR NOT NULL,
    weights_sha256 VARCHAR NOT NULL,
    meta           VARCHAR,
    event_seq      BIGINT NOT NULL,
    row_no         INTEGER NOT NULL
);

CREATE TABLE datasets (
    dataset_id   VARCHAR PRIMARY KEY,
    content_hash VARCHAR NOT NULL,
    splits       VARCHAR,
    meta         VARCHAR,
    event_seq    BIGINT NOT NULL,
    row_no       INTEGER NOT NULL
);

CREATE TABLE concepts (
    concept_id    VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    examples_hash VARCHAR NOT NULL,
    meta          VARCHAR,
    event_seq     BIGINT NOT NULL,
    row_no        INTEGER NOT NULL,
    PRIMARY KEY (concept_id, version)
);

CREATE TABLE cav_runs (
    run_id          VARCHAR PRIMARY KEY,
    concept_id      VARCHAR NOT NULL,
    concept_version INTEGER,
    model_id        VARCHAR NOT NULL,
    layer           VARCHAR NOT NULL,
    dataset_hash    VARCHAR,
    seed            BIGINT,
    accuracy        DOUBLE,
    params          VARCHAR,
    event_seq       BIGINT NOT NULL,
    row_no          INTEGER NOT NULL
);

CREATE TABLE tcav_results (
    concept    VARCHAR NOT NULL,
    layer      VARCHAR NOT NULL,
    target     VARCHAR,
    tcav_score DOUBLE,
    p_value    DOUBLE,
    p_adj      DOUBLE,
    n_runs     BIGINT,
    extra      VARCHAR,
    event_seq  BIGINT NOT NULL,
    row_no     INTEGER NOT NULL,
    PRIMARY KEY (event_seq, row_no)
);

CREATE TABLE interventions (
    intervention_id VARCHAR PRIMARY KEY,
    spec            VARCHAR NOT NULL,
    event_seq       BIGINT NOT NULL,
    row_no          INTEGER NOT NULL
);

CREATE TABLE intervention_effects (
    intervention_id VARCHAR NOT NULL,
    metrics_before  VARCHAR NOT NULL,
    metrics_after   VARCHAR NOT NULL,
    reliance        VARCHAR,
    event_seq       BIGINT NOT NULL,
    row_no          INTEGER NOT NULL,
    PRIMARY KEY (event_seq, row_no)
);
