"""Reads codes (one per line: KIND<TAB>CODE) on stdin and prints python-stdnum's
verdict for each: KIND, CODE, ok|bad, and for resident IDs whether stdnum knows
the birth place. An independent implementation to check ours against.

KIND is uscc (stdnum.cn.uscc), ric (stdnum.cn.ric) or regno: a pre-2015
15-digit business registration number, whose GS 15-2006 check digit is
ISO 7064 MOD 11,10 (stdnum.iso7064.mod_11_10). stdnum's uscc and ric compact()
strip spaces and hyphens and upper-case before validating."""
import sys

from stdnum import exceptions
from stdnum.cn import ric, uscc
from stdnum.iso7064 import mod_11_10

for line in sys.stdin:
    kind, code = line.rstrip("\n").split("\t")
    if kind == "regno":
        verdict = "ok" if len(code) == 15 and code.isdigit() and mod_11_10.is_valid(code) else "bad"
        print(f"{kind}\t{code}\t{verdict}\t-")
        continue
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
