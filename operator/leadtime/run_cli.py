"""`leadtime run`: the operator. Equivalent to `kopf run -m leadtime.handlers` plus leadtime's flags.

Outside `leadtime.handlers` on purpose: importing that package registers the kopf handlers (and imports
kopf, about half a second), which every other `leadtime` command would pay for at start-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import zlib
from typing import Any

# How long a peer's keep-alive counts before the standby presumes it dead and takes over. kopf's
# default is 60 s; 20 s (keep-alives every 10-15 s) bounds a takeover after a crash to about 20 s.
PEERING_LIFETIME_S = 20


def peering_identity() -> tuple[str | None, int | None]:
    """This replica's peering identity and priority, both derived from POD_NAME (None outside a pod).

    kopf lets exactly one peer act only when priorities differ: with equal ones every peer pauses.
    A stable hash of the pod name gives each replica its own priority without any coordination.
    """
    pod_name = os.environ.get("POD_NAME")
    if not pod_name:
        return None, None
    return pod_name, zlib.crc32(pod_name.encode()) % 1_000_000 + 1


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
    parser.add_argument("--all-namespaces", "-A", action="store_true",
                        help="watch every namespace (the default without --namespace; explicit for manifests)")
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
    parser.add_argument("--peering-lifetime", type=int, default=PEERING_LIFETIME_S, metavar="SECONDS",
                        help=f"how long a silent peer counts as alive (default {PEERING_LIFETIME_S})")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="debug logging (same as --verbose)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadtime.cli import CliError

    if args.all_namespaces and args.namespace:
        raise CliError("--all-namespaces and --namespace exclude each other")
    if args.kubeconfig:
        if not os.path.exists(args.kubeconfig):
            raise CliError(f"kubeconfig not found: {args.kubeconfig}")
        # Both kopf's login and the kubernetes client read it from the environment.
        os.environ["KUBECONFIG"] = args.kubeconfig
        # ...but the kubernetes client reads $KUBECONFIG once, when it is imported (already done by
        # then): without this, --kubeconfig is ignored in favour of ~/.kube/config.
        from kubernetes.config import kube_config

        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = args.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if args.verbose or args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    import kopf

    import leadtime.handlers  # noqa: F401  (registers the handlers)
    from leadtime.handlers import telemetry
    from leadtime.handlers.controller import OperatorConfig

    telemetry.serve(args.metrics_port, args.metrics_address)
    memo = kopf.Memo(leadtime=OperatorConfig(prometheus_url=args.prometheus_url))
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = args.peering_lifetime
    identity, priority = peering_identity()
    kopf.run(
        settings=settings,
        identity=identity,
        priority=priority,
        standalone=not args.peering,
        peering_name=args.peering,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        memo=memo,
    )
    return 0
