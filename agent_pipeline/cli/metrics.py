"""``agent-pipeline metrics``: serve the store-computed metrics for scraping, or push them once."""

from __future__ import annotations

import argparse
import sys

from agent_pipeline.cli import REQUIRED
from agent_pipeline.metrics.config import GATEWAY_ENV, MetricsConfig, gateway_credentials
from agent_pipeline.metrics.publish import publish, serve
from agent_pipeline.store import Store


def _serve(args: argparse.Namespace, settings) -> int:
    server, thread = serve(args.port, args.host, home=settings.home, config=settings.metrics,
                           expectations=settings.alert_inputs(), agents=sorted(settings.agents.enabled()),
                           store=Store(settings.store_location))
    print(f"serving metrics on http://{args.host}:{server.server_port}/metrics (Ctrl-C to stop)", flush=True)
    try:
        thread.join()
    finally:
        server.shutdown()
    return 0


def _push(args: argparse.Namespace, settings) -> int:
    flags = {"gateway_url": args.gateway, "job": args.job, "timeout_s": args.timeout}
    cfg = MetricsConfig.from_table({**settings.metrics.as_table(), **{k: v for k, v in flags.items() if v is not None}},
                                   where="agent-pipeline metrics push:")
    result = publish(cfg, auth=gateway_credentials(), home=settings.home, store=Store(settings.store_location),
                     expectations=settings.alert_inputs(), agents=sorted(settings.agents.enabled()))
    print(result.summary(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    metrics = sub.add_parser("metrics", help="expose or push the metrics computed from the store")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", required=True)
    srv = metrics_sub.add_parser("serve", help="serve /metrics for Prometheus to scrape (127.0.0.1 by default)")
    srv.add_argument("--port", type=int, default=9464, help="port to listen on (default 9464; 0 picks a free one)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    srv.set_defaults(func=_serve, settings=REQUIRED)
    push = metrics_sub.add_parser("push", help="push one snapshot to the Pushgateway (PUT, job=agent_pipeline)")
    push.add_argument("--gateway", help=f"Pushgateway URL (default: ${GATEWAY_ENV}, else [metrics] gateway_url, "
                                        "else http://127.0.0.1:9091)")
    push.add_argument("--job", help="job label of the group (default: [metrics] job, agent_pipeline)")
    push.add_argument("--timeout", type=float, default=None, help="HTTP timeout in seconds (default: [metrics] "
                                                                   "timeout_s)")
    push.set_defaults(func=_push, settings=REQUIRED)
