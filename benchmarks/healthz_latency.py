"""Latency of /healthz (database query, broker connection, worker ping) against a running server.

Usage: python benchmarks/healthz_latency.py --url http://127.0.0.1:8000 --requests 50
"""

import argparse
import json
import statistics
import time
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the server (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=50, help="sequential requests (default: %(default)s)")
    args = parser.parse_args()

    timings_ms, failures = [], 0
    for _ in range(args.requests):
        start = time.perf_counter()
        try:
            body = urllib.request.urlopen(f"{args.url}/healthz", timeout=30).read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        timings_ms.append((time.perf_counter() - start) * 1000)
        failures += json.loads(body)["status"] != "ok"

    quantiles = statistics.quantiles(timings_ms, n=100)
    print(
        f"/healthz x{args.requests}: p50 {quantiles[49]:.1f} ms, p95 {quantiles[94]:.1f} ms, "
        f"max {max(timings_ms):.1f} ms, not ok: {failures}"
    )
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
