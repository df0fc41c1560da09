"""Stands in for `dagster dev` in the tests of ops/run-dev.sh (the real one needs a minute to load on two cores;
the e2e tests run it): records what the script gave it and what it could reach, then exits or waits for SIGINT.

    python dev_stand_in.py RECORD_PATH exit|wait
"""

import json
import os
import signal
import sys
import time
import urllib.request


def reachable(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def rule_names(prom: str) -> list[str]:
    try:
        body = json.loads(urllib.request.urlopen(f"{prom}/api/v1/rules", timeout=2).read())
    except OSError:
        return []
    return sorted(r["name"] for g in body["data"]["groups"] for r in g["rules"])


def main(record: str, mode: str) -> None:
    prom = f"http://127.0.0.1:{os.environ['PROMETHEUS_PORT']}"
    gateway = f"http://127.0.0.1:{os.environ['PUSHGATEWAY_PORT']}"
    state = {"gateway_url": os.environ.get("AGENT_PIPELINE_PUSHGATEWAY_URL"),
             "sigint_handled_by_python": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
             "pushgateway_ready": reachable(f"{gateway}/-/ready"), "prometheus_ready": reachable(f"{prom}/-/ready"),
             "rules": rule_names(prom), "interrupted": False}

    def write():
        tmp = record + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, record)

    def on_interrupt(signum, frame):
        state["interrupted"] = True
        state["pushgateway_up_when_interrupted"] = reachable(f"{gateway}/-/ready")
        write()
        sys.exit(0)

    signal.signal(signal.SIGINT, on_interrupt)
    write()
    while mode == "wait":
        time.sleep(0.05)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
