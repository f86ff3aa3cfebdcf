"""The courts normaliser as a department team would write it in Python: the
baseline `credit-bench e2e` measures the Rust normaliser against.

confluent-kafka for the clients, python-stdnum for the USCC and resident-ID
checks, fastavro for the Avro body behind Confluent's 5-byte framing, the
schema registered through the registry's REST API. It does what
`services/normaliser` does for the courts' JSON (same checks in the same
order, so the same reason codes; the same Avro record, byte for byte), with
the same delivery rule: a batch's outputs are all acknowledged before its
offsets are stored, and a record that cannot be normalised goes to the
dead-letter topic with its original bytes and Kafka Connect's error headers.
Straightforward code on purpose: no tricks a team would not use.

    python3 normaliser.py --brokers 127.0.0.1:9092 --inbound credit.courts.inbound \
        --records credit.records --dlq credit.courts.dlq --registry http://127.0.0.1:8081
"""

import argparse
import datetime
import io
import json
import pathlib
import re
import signal
import struct
import sys
import urllib.request

import fastavro
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "avro" / "credit_record.avsc"
EPOCH = datetime.date(1970, 1, 1)
MAX_RECORD_BYTES = 1 << 20

# The legal guardrail (DOMAIN.md): minor behaviours that must never enter a
# natural person's credit record.
MINOR_BEHAVIOURS = {
    "petitioning": ["信访", "上访"],
    "demolition-dispute": ["拆迁"],
    "running-red-light": ["闯红灯"],
    "uncivilised-dog-keeping": ["不文明养犬", "违规养犬", "养犬"],
    "unpaid-property-fees": ["欠缴物业费", "拖欠物业费", "物业费"],
    "not-sorting-garbage": ["垃圾分类"],
}

PARTY_TYPES = {
    "自然人": "NATURAL_PERSON",
    "法人": "LEGAL_PERSON",
    "法人或其他组织": "LEGAL_PERSON",
    "其他组织": "LEGAL_PERSON",
    "非法人组织": "LEGAL_PERSON",
    "个体工商户": "INDIVIDUAL_BUSINESS",
}

# Reason codes found before the record is understood (Kafka Connect's stage).
CONVERTER_REASONS = {"empty_record", "bad_encoding", "malformed_json"}

DOCUMENT_YEAR = re.compile(r"[(（〔\[【]\d{4}")
CN_DATE = re.compile(r"(\d{1,9})年(\d{1,9})月(\d{1,9})日")
SEP_DATE = re.compile(r"(\d{1,9})([-/.])(\d{1,9})\2(\d{1,9})")


class Rejected(Exception):
    def __init__(self, code, field, detail):
        super().__init__(detail)
        self.code, self.field, self.detail = code, field, detail

    def __str__(self):
        field = f" ({self.field})" if self.field else ""
        return f"{self.code}{field}: {self.detail}"


def missing(field):
    return Rejected("missing_field", field, "required field is absent or empty")


def text(record, field):
    """A string field, trimmed; blank counts as absent."""
    v = record.get(field)
    if v is None:
        return None
    if not isinstance(v, str):
        raise Rejected("malformed_json", None, f"{field}: expected a string")
    v = v.strip()
    return v or None


def required(record, field):
    v = text(record, field)
    if v is None:
        raise missing(field)
    return v


def parse_date(s):
    """Days since 1970-01-01 of YYYYMMDD, YYYY年MM月DD日, YYYY-MM-DD (or / .), or None."""
    s = s.strip()
    if len(s) == 8 and s.isascii() and s.isdigit():
        parts = (s[:4], s[4:6], s[6:])
    elif m := CN_DATE.fullmatch(s):
        parts = m.groups()
    elif m := SEP_DATE.fullmatch(re.split(r"[ T]", s, maxsplit=1)[0]):
        if len(m.group(1)) != 4:
            return None
        parts = (m.group(1), m.group(3), m.group(4))
    else:
        return None
    y, mo, d = (int(p) for p in parts)
    if not 1900 <= y <= 2199:
        return None
    try:
        return (datetime.date(y, mo, d) - EPOCH).days
    except ValueError:
        return None


def required_date(record, field):
    v = text(record, field)
    if v is None:
        raise missing(field)
    days = parse_date(v)
    if days is None:
        raise Rejected("invalid_date", field, "not a real date")
    return days


def optional_date(record, field):
    v = text(record, field)
    if v is None:
        return None
    days = parse_date(v)
    if days is None:
        raise Rejected("invalid_date", field, "not a real date")
    return days


def valid_resident_id(code, today):
    """GB 11643: 17 digits, a real birth date from 1900 to today, the check
    character. Not `ric.validate`, which also wants the birth place in
    stdnum's table of divisions: that table lacks districts Guangzhou has had
    since 2005 (南沙, 从化, 增城 as districts), whose people the bus accepts."""
    if len(code) != 18 or not (code.isascii() and code[:17].isdigit()) or ric.calc_check_digit(code) != code[17]:
        return False
    try:
        birth = ric.get_birth_date(code)
    except stdnum_errors.ValidationError:
        return False
    return birth.year >= 1900 and (birth - EPOCH).days <= today


def subject_type(party, card, today):
    if party:
        if party not in PARTY_TYPES:
            raise Rejected("invalid_value", "partyTypeName", "not a known party type")
        return PARTY_TYPES[party]
    # Older feeds omit the party type: a valid resident ID is a person's.
    return "NATURAL_PERSON" if valid_resident_id(card, today) else "LEGAL_PERSON"


def check_subject_key(kind, card, today):
    if kind == "NATURAL_PERSON":
        if not valid_resident_id(card, today):
            # Never repeat a resident ID in a message.
            raise Rejected("invalid_resident_id", "cardNum", "not a valid resident ID")
    else:
        try:
            uscc.validate(card)
        except stdnum_errors.ValidationError as e:
            raise Rejected("invalid_uscc", "cardNum", f"not a valid USCC: {e}")


def check_guardrail(kind, texts):
    if kind != "NATURAL_PERSON":
        return
    for behaviour, keywords in MINOR_BEHAVIOURS.items():
        if any(k in t for t in texts for k in keywords):
            raise Rejected(
                "guardrail_minor_behaviour",
                None,
                f"{behaviour} must not enter a natural person's credit record without legislation",
            )


def normalise_courts(value, msg, today):
    """The courts' JSON record as the shared CreditRecord (a dict for fastavro)."""
    if not value or value.isspace():
        raise Rejected("empty_record", None, "value is empty")
    if len(value) > MAX_RECORD_BYTES:
        raise Rejected("record_too_large", None, f"{len(value)} bytes exceed the limit of {MAX_RECORD_BYTES}")
    try:
        r = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise Rejected("bad_encoding", None, f"not UTF-8 (first bad byte at {e.start})")
    except json.JSONDecodeError as e:
        raise Rejected("malformed_json", None, str(e))
    if not isinstance(r, dict):
        raise Rejected("malformed_json", None, "expected an object")

    name = required(r, "iname")
    case_code = required(r, "caseCode")
    if not (DOCUMENT_YEAR.search(case_code) and case_code.endswith("号")):
        raise Rejected("invalid_value", "caseCode", "document number must carry a bracketed year and end in 号")
    card = required(r, "cardNum")
    kind = subject_type(text(r, "partyTypeName"), card, today)
    check_subject_key(kind, card, today)
    conduct = required(r, "disruptTypeName")
    duty = text(r, "duty")
    check_guardrail(kind, [conduct, duty or ""])
    reg_date = required_date(r, "regDate")
    publish_date = optional_date(r, "publishDate")
    if publish_date is not None and publish_date < reg_date:
        raise Rejected("invalid_date", "publishDate", "published before the case was registered")
    court = required(r, "courtName")

    attributes = {"court": court}
    for key, field in (("area", "areaName"), ("basis_issuer", "gistUnit")):
        if v := text(r, field):
            attributes[key] = v
    if duty:
        attributes["obligation"] = duty
    if v := text(r, "performance"):
        attributes["performance"] = v

    _, timestamp = msg.timestamp()
    return {
        "record_id": f"courts:{msg.partition()}:{msg.offset()}",
        "department": "courts",
        "domain": "judicial",
        "subject": {"type": kind, "key": card, "name": name},
        "responsible_person": text(r, "businessEntity"),
        "info_kind": "DISHONESTY_LIST",
        "list_type": "JUDGEMENT_DEFAULTER",
        "grade": None,
        "decision_number": case_code,
        "decision_date": reg_date,
        "publication_date": publish_date,
        "valid_from": publish_date if publish_date is not None else reg_date,
        "valid_until": None,
        "severity": "SERIOUS",
        "legal_basis": text(r, "gistId"),
        "conduct": conduct,
        "amount_fen": None,
        "attributes": attributes,
        "lineage": {
            "source_topic": msg.topic(),
            "source_partition": msg.partition(),
            "source_offset": msg.offset(),
            "source_record_id": case_code,
            "source_timestamp": timestamp if timestamp >= 0 else None,
        },
    }


def register(registry, subject, schema_text):
    body = json.dumps({"schema": schema_text}).encode()
    req = urllib.request.Request(
        f"{registry}/subjects/{subject}/versions",
        data=body,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)["id"]


def dead_letter_headers(msg, rejection, connector):
    headers = [h for h in (msg.headers() or []) if h[0] not in ("traceparent", "tracestate")]
    stage = "VALUE_CONVERTER" if rejection.code in CONVERTER_REASONS else "TRANSFORMATION"
    headers += [
        ("__connect.errors.topic", msg.topic()),
        ("__connect.errors.partition", str(msg.partition())),
        ("__connect.errors.offset", str(msg.offset())),
        ("__connect.errors.connector.name", connector),
        ("__connect.errors.task.id", "0"),
        ("__connect.errors.stage", stage),
        ("__connect.errors.class.name", "cn.gov.guangzhou.creditbus.normaliser.Adapter"),
        ("__connect.errors.exception.class.name", f"cn.gov.guangzhou.creditbus.Rejection.{rejection.code}"),
        ("__connect.errors.exception.message", str(rejection)),
        ("credit-bus.reason", rejection.code),
    ]
    if rejection.field:
        headers.append(("credit-bus.field", rejection.field))
    return headers


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--inbound", required=True)
    p.add_argument("--records", required=True, help="output topic of normalised records")
    p.add_argument("--dlq", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--group", default="credit.normaliser.courts.py")
    p.add_argument("--batch-size", type=int, default=5000)
    a = p.parse_args()

    schema_text = SCHEMA.read_text()
    schema = fastavro.parse_schema(json.loads(schema_text))
    schema_id = register(a.registry, f"{a.records}-value", schema_text)
    framing = struct.pack(">bI", 0, schema_id)
    connector = "credit-normaliser-courts-py"

    common = {"bootstrap.servers": a.brokers, "client.id": connector}
    consumer = Consumer({
        **common,
        "group.id": a.group,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 10,
    })
    producer = Producer({
        **common,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.timeout.ms": 0,
        "queue.buffering.max.messages": 1000000,
        "batch.num.messages": 10000,
        "partitioner": "murmur2_random",
    })
    consumer.subscribe([a.inbound])

    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(err)

    def send(topic, key, value, headers=None):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
                return
            except BufferError:
                producer.poll(0.001)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print("running", flush=True)
    while not stop:
        first = consumer.poll(0.5)
        if first is None:
            continue
        batch = [first] + consumer.consume(a.batch_size - 1, timeout=0)
        today = (datetime.date.today() - EPOCH).days
        offsets = {}
        for msg in batch:
            if msg.error():
                print(f"consumer error: {msg.error()}", file=sys.stderr)
                continue
            value = msg.value()
            try:
                record = normalise_courts(value, msg, today)
            except Rejected as rejection:
                send(a.dlq, msg.key(), value, dead_letter_headers(msg, rejection, connector))
            else:
                out = io.BytesIO()
                out.write(framing)
                fastavro.schemaless_writer(out, schema, record)
                send(a.records, record["record_id"], out.getvalue())
            offsets[msg.partition()] = msg.offset() + 1
        # Every output acknowledged, then the batch's offsets stored.
        producer.flush()
        if failures:
            raise KafkaException(failures[0])
        consumer.store_offsets(offsets=[TopicPartition(a.inbound, p, o) for p, o in offsets.items()])
    consumer.close()


if __name__ == "__main__":
    main()
