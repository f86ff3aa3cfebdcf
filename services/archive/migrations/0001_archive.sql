-- The credit archive. Every fact table is keyed by where the fact was read
-- (topic, partition, offset), and the ingest inserts with ON CONFLICT DO
-- NOTHING: a message read twice (a replay after a crash) is stored once.
-- `learned_at` is the Kafka timestamp of that message, not the wall clock,
-- so dropping the database and replaying the topics rebuilds the same rows.
-- Dates are the records' own (valid time).

-- Normalised records (credit.records).
CREATE TABLE records (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    learned_at       timestamptz NOT NULL,
    record_id        text        NOT NULL,
    department       text        NOT NULL,
    domain           text        NOT NULL,
    subject_type     text        NOT NULL,
    subject_key      text        NOT NULL,
    subject_name     text        NOT NULL,
    responsible_person text,
    info_kind        text        NOT NULL,
    list_type        text,
    grade            text,
    decision_number  text        NOT NULL,
    decision_date    date        NOT NULL,
    publication_date date,
    valid_from       date        NOT NULL,
    valid_until      date,
    severity         text        NOT NULL,
    legal_basis      text,
    conduct          text        NOT NULL,
    amount_fen       bigint,
    attributes       jsonb       NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    source_record_id text        NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX records_subject ON records (subject_key, learned_at);
CREATE INDEX records_record_id ON records (record_id);

-- Notices to implementing departments (credit.<dept>.notices).
CREATE TABLE notices (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    learned_at       timestamptz NOT NULL,
    notice_id        text        NOT NULL,
    kind             text        NOT NULL,
    department       text        NOT NULL,
    measure_id       text        NOT NULL,
    measure_name     text        NOT NULL,
    legal_basis      text        NOT NULL,
    catalogue_version integer    NOT NULL,
    generation       integer     NOT NULL,
    record_id        text        NOT NULL,
    list_type        text        NOT NULL,
    subject_type     text        NOT NULL,
    subject_key      text        NOT NULL,
    subject_name     text        NOT NULL,
    identifying_department text  NOT NULL,
    decision_number  text        NOT NULL,
    reason           text,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX notices_subject ON notices (subject_key, learned_at);
CREATE INDEX notices_notice_id ON notices (notice_id);

-- Departments' feedback on their notices (credit.<dept>.feedback).
CREATE TABLE feedback (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    learned_at       timestamptz NOT NULL,
    notice_id        text        NOT NULL,
    department       text        NOT NULL,
    outcome          text        NOT NULL,
    reason           text,
    responded_at     timestamptz NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX feedback_notice ON feedback (notice_id);

-- Operators' commands to the engine (credit.engine.commands): entry ends and
-- catalogue activations.
CREATE TABLE commands (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    learned_at       timestamptz NOT NULL,
    record_id        text,
    reason           text,
    activate_version integer,
    PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX commands_record ON commands (record_id) WHERE record_id IS NOT NULL;

-- Catalogue versions (credit.catalogue, compacted), by their natural key: a
-- version's text never changes once published.
CREATE TABLE catalogue_versions (
    version          integer     PRIMARY KEY,
    learned_at       timestamptz NOT NULL,
    effective        text        NOT NULL,
    description      text        NOT NULL,
    body             text        NOT NULL
);

-- Messages the archive could not read, with why, so nothing is skipped
-- silently and an operator can find the original by its position.
CREATE TABLE ingest_errors (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    learned_at       timestamptz NOT NULL,
    reason           text        NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
);

-- Where the ingest is, per input partition: written in the same transaction
-- as the rows, so the database alone says what it holds. On start the ingest
-- resumes here (an empty database replays every topic from its beginning);
-- the consumer group's offsets are committed after each transaction for lag
-- monitoring only.
CREATE TABLE ingest_positions (
    topic            text        NOT NULL,
    "partition"      integer     NOT NULL,
    next_offset      bigint      NOT NULL,
    PRIMARY KEY (topic, "partition")
);

-- Every read of personal data through the API: who, which subject, which
-- fields, when. Not a fact from the topics: a rebuild starts it empty.
CREATE TABLE audit (
    id               bigserial   PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    department       text        NOT NULL,
    action           text        NOT NULL,
    subject_key      text        NOT NULL,
    fields           text[]      NOT NULL,
    masked           boolean     NOT NULL
);
CREATE INDEX audit_subject ON audit (subject_key);
