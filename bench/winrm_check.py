"""Benchmarks of the WinRM host check (``python bench/winrm_check.py``), against the WinRM test double.

1. overhead: one host checked by the toolkit (``inspect_windows_host``: a UTF-8 shell, Receive
   bounded by the deadline, the parse) against pywinrm's own ``Session.run_ps`` running the same
   script on the same double. Target: ratio <= 1.3.
2. parallelism: N hosts that each take D seconds to answer, checked by ``inspect_hosts`` at once,
   against the same N checks one after another. Target: ratio <= 1.5 / N (about one host's time).

Each figure is the median of interleaved rounds (the first round only warms up). Nothing leaves
127.0.0.1; no Windows host is involved, so the figures measure the toolkit's own cost, not a
host's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.doubles.winrm_host import WinRMHostDouble  # noqa: E402
from toolkit.inspection import InspectTarget, inspect_hosts  # noqa: E402
from toolkit.windows import releases  # noqa: E402
from toolkit.winhost import CHECK_SCRIPT, inspect_windows_host  # noqa: E402
from toolkit.winrm import open_session  # noqa: E402
from toolkit.winrm_config import Secret, WinRMSpec, parse_winrm_table  # noqa: E402


def _spec(double: WinRMHostDouble, base: Path) -> WinRMSpec:
    table = {"endpoint": double.url, "transport": "basic", "user": double.username}
    return parse_winrm_table(table, where="bench", docker_host=None, base=base, home=str(base))


def medians(rounds: int, cases: dict[str, Callable[[], Any]]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            if round_:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def overhead(rounds: int, base: Path) -> tuple[float, float]:
    import winrm

    with WinRMHostDouble() as double:
        spec = _spec(double, base)

        def toolkit() -> None:
            inspect_windows_host(open_session(spec, Secret(double.password)), deadline=30)

        def pywinrm() -> None:
            session = winrm.Session(
                double.url,
                auth=(double.username, double.password),
                transport="basic",
                ca_trust_path=None,
                proxy=None,
            )
            result = session.run_ps(CHECK_SCRIPT)
            assert result.status_code == 0

        found = medians(rounds, {"toolkit": toolkit, "pywinrm": pywinrm})
    return found["toolkit"], found["pywinrm"]


def parallelism(rounds: int, hosts: int, delay: float, base: Path) -> tuple[float, float]:
    with ExitStack() as stack:
        doubles = [stack.enter_context(WinRMHostDouble(reply_delay=delay)) for _ in range(hosts)]
        release = next(iter(releases().values()))
        targets = [
            InspectTarget(name=d.url, releases=(release,), winrm=_spec(d, base)) for d in doubles
        ]
        password = {"TOOLKIT_WINRM_PASSWORD": Secret(doubles[0].password)}

        def session(spec: WinRMSpec, secret: Secret | None) -> Any:
            return open_session(spec, secret)

        def together() -> None:
            reports = inspect_hosts(
                targets, password, session_fn=session, engine_fn=None, deadline=30
            )
            assert all(r.facts is not None for r in reports), [r.error for r in reports]

        def one_by_one() -> None:
            for target in targets:
                inspect_windows_host(session(target.winrm, password["TOOLKIT_WINRM_PASSWORD"]),
                                     deadline=30)  # fmt: skip

        found = medians(rounds, {"together": together, "one_by_one": one_by_one})
    return found["together"], found["one_by_one"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.5, help="seconds each host takes")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        mine, theirs = overhead(args.rounds, Path(tmp))
        ratio = mine / theirs
        failed |= ratio > 1.3
        print(
            f"one host: toolkit {mine * 1000:.1f} ms, pywinrm run_ps {theirs * 1000:.1f} ms, "
            f"ratio {ratio:.2f} (target <= 1.30) {'ok' if ratio <= 1.3 else 'OVER'}"
        )
        rounds = max(3, args.rounds // 3)
        together, apart = parallelism(rounds, args.hosts, args.delay, Path(tmp))
        ratio = together / apart
        target = 1.5 / args.hosts
        failed |= ratio > target
        print(
            f"{args.hosts} hosts taking {args.delay:g} s each: at once {together:.2f} s, one by "
            f"one {apart:.2f} s, ratio {ratio:.2f} (target <= {target:.2f}) "
            f"{'ok' if ratio <= target else 'OVER'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
