#!/usr/bin/env python3
"""Write the Terway Grafana dashboards to grafana/dashboards/*.json.

    python grafana/generate.py            # regenerate the committed dashboards
    python grafana/generate.py --check    # exit 1 when the committed JSON is out of date
    python grafana/generate.py --multi-cluster --out DIR   # show the cluster picker (one Prometheus, many clusters)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run as a script: the dashboard modules sit next to this file

from terway_dashboards import context, load_alert_panels, render  # noqa: E402

ALERT_PANELS = HERE / "alert-panels.yaml"
OUT = HERE / "dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help="directory to write to (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    parser.add_argument(
        "--multi-cluster", action="store_true", help="show the cluster variable (it is hidden by default)"
    )
    args = parser.parse_args(argv)
    files = render(context(load_alert_panels(ALERT_PANELS), multi_cluster=args.multi_cluster))
    if args.check:
        stale = sorted(name for name, text in files.items() if _read(args.out / name) != text)
        for name in stale:
            print(f"{args.out / name} is out of date; run python grafana/generate.py", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
        print(args.out / name)
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
