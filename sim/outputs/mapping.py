"""Where the index mapping lives and what ``--create-mapping-only`` does.

``mapping.json`` (top level of the repository) is a create-index body with
``dynamic: strict``: a document field it does not map is rejected, so a test proves every
field the simulator emits is mapped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

MAPPING_PATH = Path(__file__).resolve().parents[2] / "mapping.json"
#: Ground-truth incident records go to their own index, never into the telemetry.
INCIDENTS_MAPPING_PATH = Path(__file__).resolve().parent / "incidents_mapping.json"
#: Alerts (what monitors derived from the telemetry) too.
ALERTS_MAPPING_PATH = Path(__file__).resolve().parent / "alerts_mapping.json"


def create_mapping_only(args: argparse.Namespace) -> int:
    """Write mapping.json to the output dir; with an OpenSearch URL also create the index."""
    from sim.outputs.files import check_output_dir

    out_dir = Path(args.output_dir or "./output")
    unusable = check_output_dir(out_dir)
    if unusable:
        print(f"error: {unusable}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "mapping.json"
    tmp = target.with_name("mapping.json.partial")
    shutil.copyfile(MAPPING_PATH, tmp)
    os.replace(tmp, target)
    print(f"wrote {target}", file=sys.stderr)
    url = args.opensearch or os.environ.get("OPENSEARCH_URL")
    if not url:
        return 0
    from sim.outputs.index_setup import setup_index
    from sim.outputs.opensearch import OpenSearchSetupError, connect

    try:
        client = connect(url, ca_certs=args.ca_certs, insecure=args.insecure)
        return setup_index(client, args.index or "ecommerce_performance_demo", MAPPING_PATH,
                           out=sys.stderr)
    except OpenSearchSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
