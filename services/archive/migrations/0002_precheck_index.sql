-- The pre-check first asks which of up to 10,000 codes have a punishment
-- duty for the measure or department at all: with the duty's columns in the
-- subject index, that question is answered from the index alone (an
-- index-only scan once the table is vacuumed), and the full facts are read
-- only for the few subjects it names.
DROP INDEX notices_subject;
CREATE INDEX notices_subject ON notices (subject_key, learned_at)
    INCLUDE (record_id, measure_id, department, generation, kind);
