"""The environment of the benchmark children that measure recon: as recon's own install has it."""

from __future__ import annotations

import os
from pathlib import Path

NO_PANDAS = Path(__file__).resolve().parent / "no_pandas"


def production_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with pandas unimportable, as in recon's own install.

    The `bench` extra installs pandas (the legacy peer needs it). Where pandas is installed,
    pyarrow imports it on its first `pa.array` (1-2 s here, holding the GIL: it stalled a
    rate-limited pull for a second mid-run) and dagster-snowflake imports it when loaded. recon's
    install has no pandas, so the children measuring recon (and dlt, which needs none either)
    find a `pandas` that is "not installed".
    """
    paths = [str(NO_PANDAS), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}
