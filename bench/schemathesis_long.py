"""The long schemathesis run: at least 1,000 generated cases per partner-API operation, all checks.

Usage:
    .venv/bin/python bench/schemathesis_long.py [--examples 1000]
        In process, like the suite's tests/consents/test_schema.py (a throwaway test database, a
        partner with a token and a feed of events), every phase: examples, coverage, fuzzing
        (``--examples`` cases per operation, random rather than the suite's derandomised 50) and
        stateful (a third as many call sequences). Takes several minutes; needs REDIS_URL like the
        suite. Extra arguments go to pytest.

    .venv/bin/python bench/schemathesis_long.py --url http://127.0.0.1:8000 --token "$TOKEN"
        Against a running portal (``make run``) with a partner's bearer token (README, "Partner
        API"): ``schemathesis run`` on its published schema, every phase and check. Raise
        PARTNER_API_RATE on that portal first or the run ends in 429s.

Both read schemathesis.toml, which records the one answer the checks must expect (a well-formed
feed cursor the API never issued is refused with 400 ``invalid_cursor``). Exit status: non-zero
when anything fails.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000, help="generated cases per operation (fuzzing phase)")
    parser.add_argument("--url", help="base URL of a running portal; omit to run in process")
    parser.add_argument("--token", default=os.environ.get("PARTNER_TOKEN", ""), help="partner bearer token (--url)")
    args, extra = parser.parse_known_args()
    if args.url:
        if not args.token:
            parser.error("--url needs --token (or PARTNER_TOKEN): a partner access token with every scope")
        command = [
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{args.url.rstrip('/')}/api/schema/"),
            *("--url", args.url, "--header", f"Authorization: Bearer {args.token}"),
            *("--phases", "examples,coverage,fuzzing,stateful", "--checks", "all"),
            *("--max-examples", str(args.examples), "--continue-on-failure"),
            *extra,
        ]
        return subprocess.call(command, cwd=ROOT)
    env = {**os.environ, "SCHEMATHESIS_MAX_EXAMPLES": str(args.examples)}
    command = [sys.executable, "-m", "pytest", "tests/consents/test_schema.py", "-p", "no:cacheprovider", *extra]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
