"""`leadtime emulate` and `leadtime serve-fake`: the replica model in a cluster whose pods do not (or do) run."""

from __future__ import annotations

import argparse

from leadtime.cli import CliError

DEFAULT_EMULATOR_PORT = 9400


def register(subparsers: argparse._SubParsersAction) -> None:
    emulate = subparsers.add_parser(
        "emulate",
        help="replay a trace over the Ready pods of a ModelDeployment and serve vLLM-style metrics",
        description=(
            "Watches the Ready pods of one ModelDeployment, replays a trace through the replica model over "
            "exactly those pods, and serves per-pod vLLM metrics on 127.0.0.1:PORT for Prometheus. With "
            "--time-scale K the emulated world runs K times faster than the wall clock: every duration it "
            "reports is trace seconds / K, every rate is trace rate x K (see docs/demo.md, Units)."
        ),
    )
    emulate.add_argument("--kubeconfig", help="kubeconfig of the cluster (default: the usual lookup)")
    emulate.add_argument("--namespace", default="default")
    emulate.add_argument("--name", required=True, help="the ModelDeployment whose pods to emulate")
    emulate.add_argument("--trace", required=True, help="canonical trace CSV (see `leadtime trace`)")
    emulate.add_argument("--time-scale", type=float, default=10.0, help="trace seconds per wall second")
    emulate.add_argument("--seed", type=int, default=0)
    emulate.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT, help="metrics port on 127.0.0.1")
    emulate.add_argument("--profile", default=None, help="replica profile name or YAML file")
    emulate.add_argument("--start", type=float, default=0.0, help="skip this many trace seconds")
    emulate.add_argument("--duration", type=float, default=None, help="replay at most this many trace seconds")
    emulate.add_argument(
        "--rate-scale", type=float, default=1.0,
        help="multiply the trace's request rate (thins or replicates arrivals, deterministically by seed)",
    )
    emulate.add_argument(
        "--wait-for-ready", type=int, nargs="?", const=1, default=0, metavar="N",
        help="hold trace time at the start until N pods (default 1) of the ModelDeployment are Ready",
    )
    emulate.add_argument(
        "--keep-serving", action="store_true", help="keep serving metrics after the trace ends (until Ctrl-C)"
    )
    emulate.add_argument("--poll-interval", type=float, default=0.5, help="wall seconds between pod listings")
    emulate.add_argument(
        "--file-sd", default=None,
        help="write a Prometheus file_sd target for this emulator to this JSON path (removed on exit)",
    )
    emulate.add_argument("--summary-json", default=None, help="write the end-of-trace summary to this path")
    emulate.set_defaults(func=_emulate)

    fake = subparsers.add_parser(
        "serve-fake",
        help="a fake model server: OpenAI-style /v1/completions answered after the modelled latency, /metrics",
    )
    fake.add_argument("--host", default="127.0.0.1", help="bind address (a container needs 0.0.0.0)")
    fake.add_argument("--port", type=int, default=8000)
    fake.add_argument("--profile", default=None, help="replica profile name or YAML file")
    fake.add_argument(
        "--time-scale", type=float, default=1.0, help="run the model this many times faster than real time"
    )
    fake.add_argument(
        "--cold-start", default=None,
        help="/health answers 503 this long after start, like a model load (default: $COLD_START or 0)",
    )
    fake.add_argument("--namespace", default=None, help="namespace label (default: $POD_NAMESPACE)")
    fake.add_argument("--model-deployment", default=None, help="label (default: $MODEL_DEPLOYMENT)")
    fake.add_argument("--pool", default=None, help="pool label (default: $POOL or interactive)")
    fake.add_argument("--pod", default=None, help="pod label (default: $POD_NAME or the hostname)")
    fake.set_defaults(func=_serve_fake)


def _emulate(args: argparse.Namespace) -> int:
    from leadtime.emulator.runner import EmulateOptions, run_emulate

    if args.time_scale <= 0:
        raise CliError("--time-scale must be > 0")
    if args.wait_for_ready < 0:
        raise CliError("--wait-for-ready must be >= 0")
    if args.rate_scale <= 0:
        raise CliError("--rate-scale must be > 0")
    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a port")
    return run_emulate(EmulateOptions.from_args(args))


def _serve_fake(args: argparse.Namespace) -> int:
    from leadtime.emulator.server import serve_fake

    if args.time_scale <= 0:
        raise CliError("--time-scale must be > 0")
    return serve_fake(args)
