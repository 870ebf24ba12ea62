"""``ptq env [--threads N]``: the environment and keys a benchmark run on this machine records.

The thread count is part of both keys, and a run uses ``ptq.host.env.benchmark_threads()`` unless
``--ptq-threads`` says otherwise (torch's default less one spare core). So the default here is
that count, not the calling process's: printing torch's own default showed a fingerprint no run
on the machine ever recorded. Registered after ``ptq.cli``'s built-in ``env``, it replaces it.
"""

from __future__ import annotations

import argparse
import json

from ptq.cli import command
from ptq.errors import UserError
from ptq.host.env import KEYS, benchmark_threads, environment, fingerprint, key_hash

__all__: list[str] = []


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="the keys of a run with --ptq-threads=N (default: a run's default, ptq.host.env.benchmark_threads())",
    )


@command("env", _args, "the environment and keys a benchmark run on this machine records")
def _env(args: argparse.Namespace) -> int:
    default = benchmark_threads()
    if args.threads is not None and args.threads < 1:
        raise UserError(
            f"--threads={args.threads}: must be >= 1 (torch intra-op threads); omit it for a run's default ({default})"
        )
    threads = default if args.threads is None else args.threads
    env = environment(threads)
    scope = (
        f"a default benchmark run: {threads} thread(s), ptq.host.env.benchmark_threads(), as without --ptq-threads"
        if args.threads is None
        else f"a benchmark run with --ptq-threads={threads} (the default is {default})"
    )
    print(
        json.dumps(
            {
                "fingerprint": fingerprint(env),
                "keys": {kind: key_hash(env, kind) for kind in KEYS},
                "recorded_by": scope,
                **env,
            },
            indent=2,
        )
    )
    return 0
