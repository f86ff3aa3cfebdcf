"""Reads codes (one per line: KIND<TAB>CODE) on stdin and prints python-stdnum's
verdict for each: KIND, CODE, ok|bad, and for resident IDs whether stdnum knows
the birth place. An independent implementation to check ours against."""
import sys

from stdnum import exceptions
from stdnum.cn import ric, uscc

for line in sys.stdin:
    kind, code = line.rstrip("\n").split("\t")
    mod = uscc if kind == "uscc" else ric
    try:
        mod.validate(code)
        verdict = "ok"
    except exceptions.ValidationError:
        verdict = "bad"
    place = "-"
    if kind == "ric":
        try:
            ric.get_birth_place(code)
            place = "known"
        except Exception:
            place = "unknown"
    print(f"{kind}\t{code}\t{verdict}\t{place}")
