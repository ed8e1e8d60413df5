"""`leadtime run`: the operator. Equivalent to `kopf run -m leadtime.handlers` plus leadtime's flags."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="run the operator (kopf) against the current cluster",
        description="Run the leadtime operator: reconcile ModelDeployments and scale their pools.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG / ~/.kube/config)")
    parser.add_argument("--prometheus-url", default=os.environ.get("LEADTIME_PROMETHEUS_URL", ""),
                        help="Prometheus for ModelDeployments that set no spec.metrics.prometheusUrl")
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="watch this namespace (repeatable; glob patterns allowed); default: cluster-wide")
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--peering", metavar="NAME",
                         help="coordinate with other operator replicas through this kopf peering object")
    peering.add_argument("--standalone", action="store_true",
                         help="do not coordinate with other replicas (the default when --peering is not given)")
    parser.add_argument("--metrics-port", type=int, default=8080,
                        help="serve the operator's own /metrics on this port (0: off; default 8080)")
    parser.add_argument("--metrics-address", default="127.0.0.1",
                        help="address to bind /metrics to (default 127.0.0.1; 0.0.0.0 inside a cluster)")
    parser.add_argument("--liveness", metavar="URL",
                        help="kopf liveness endpoint, e.g. http://0.0.0.0:8081/healthz")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadtime.cli import CliError

    if args.kubeconfig:
        if not os.path.exists(args.kubeconfig):
            raise CliError(f"kubeconfig not found: {args.kubeconfig}")
        # Both kopf's login and the kubernetes client read it from the environment.
        os.environ["KUBECONFIG"] = args.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    import kopf

    import leadtime.handlers  # noqa: F401  (registers the handlers)
    from leadtime.handlers import telemetry
    from leadtime.handlers.controller import OperatorConfig

    telemetry.serve(args.metrics_port, args.metrics_address)
    memo = kopf.Memo(leadtime=OperatorConfig(prometheus_url=args.prometheus_url))
    kopf.run(
        standalone=not args.peering,
        peering_name=args.peering,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        memo=memo,
    )
    return 0
