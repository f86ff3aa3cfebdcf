"""Checks that two normalisers turned the same inbound records into the same
outputs: every normalised record byte for byte (same key), every dead letter
with the same value and the same headers (bar the connector's name, the
human-readable message and trace context). How the Python baseline was shown
to do the Rust normaliser's work:

    python3 same_output.py BROKERS RUST_RECORDS RUST_DLQ PY_RECORDS PY_DLQ
"""
import sys

from confluent_kafka import Consumer, TopicPartition

LOOSE = {"__connect.errors.exception.message", "__connect.errors.connector.name", "traceparent", "tracestate"}


def read(brokers, topic, dlq):
    c = Consumer({"bootstrap.servers": brokers, "group.id": "same-output", "enable.auto.commit": False})
    parts = c.list_topics(topic).topics[topic].partitions
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, idle = {}, 0
    while idle < 3:
        batch = c.consume(10000, 1.0)
        idle = 0 if batch else idle + 1
        for m in batch:
            if m.error():
                raise SystemExit(f"{topic}: {m.error()}")
            h = dict(m.headers() or [])
            key = (h["__connect.errors.partition"], h["__connect.errors.offset"]) if dlq else m.key()
            out[key] = (m.value(), {k: v for k, v in h.items() if k not in LOOSE})
    c.close()
    return out


def main():
    brokers, rust_records, rust_dlq, py_records, py_dlq = sys.argv[1:6]
    r1, r2 = read(brokers, rust_records, False), read(brokers, py_records, False)
    d1, d2 = read(brokers, rust_dlq, True), read(brokers, py_dlq, True)
    same_records = sum(1 for k, v in r1.items() if r2.get(k, (None,))[0] == v[0])
    same_dead = sum(1 for k, v in d1.items() if d2.get(k) == v)
    print(f"records: {len(r1)} and {len(r2)}, {same_records} identical; "
          f"dead letters: {len(d1)} and {len(d2)}, {same_dead} identical")
    ok = same_records == len(r1) == len(r2) and same_dead == len(d1) == len(d2) and r1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
