"""Run a versioned Great Expectations 1.x suite (a JSON file under include/gx/) over a pandas DataFrame.

GX is used directly, without the Airflow provider (its pins clash with Airflow 3.3): an ephemeral, in-memory
context; a pandas datasource with a dataframe asset and a whole-dataframe batch definition. Suites take run-time
values as expectation parameters ({"$PARAMETER": "known_streams"}).

great_expectations is imported inside run(): importing it takes seconds, and DAG files import callers at parse time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SUITE_KEYS = ("name", "expectations", "meta", "notes")


def load_suite_dict(path: str | Path) -> dict:
    """The suite JSON; ValueError naming the file when it is not a versioned suite."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    version = (data.get("meta") or {}).get("version") if isinstance(data, dict) else None
    if not isinstance(version, int) or not data.get("name") or not isinstance(data.get("expectations"), list):
        raise ValueError(f"{path}: must be a GX ExpectationSuite with name, expectations and meta.version (int)")
    return data


def plain(value):
    """JSON-safe scalar: numpy -> python, NaN -> None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _exception_message(info) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for nested in info.values():  # keyed by metric id
        if isinstance(nested, dict) and nested.get("raised_exception"):
            return nested.get("exception_message")
    return None


def run(frame, *, suite_path: str | Path, parameters: dict | None = None, asset_name: str = "rows") -> dict:
    """Validate `frame` against the suite.

    Returns {"suite", "suite_version", "success", "evaluated", "successful", "failed": [{"expectation", "column",
    "description", "meta", "unexpected": first values, "rows": every unexpected row index, "error"?}]}.
    """
    import great_expectations as gx  # slow and chatty: only when validating
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    data = load_suite_dict(suite_path)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch_definition = (
        context.data_sources.add_pandas("mediaflow")
        .add_dataframe_asset(asset_name)
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(gx.ExpectationSuite(**{k: data[k] for k in SUITE_KEYS if k in data}))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format="COMPLETE", expectation_parameters=parameters or {})

    failed = []
    for res in result.results:
        if res.success:
            continue
        config_ = res.expectation_config
        detail = res.result or {}
        entry = {
            "expectation": config_.type,
            "column": config_.kwargs.get("column"),
            "description": config_.description,
            "meta": dict(config_.meta or {}),
            "unexpected": [plain(v) for v in (detail.get("partial_unexpected_list") or [])[:5]],
            "rows": [i for i in (detail.get("unexpected_index_list") or []) if isinstance(i, int)],
        }
        error = _exception_message(res.exception_info)
        if error:
            entry["error"] = error
        failed.append(entry)
    stats = result.statistics
    return {
        "suite": suite.name,
        "suite_version": data["meta"]["version"],
        "success": bool(result.success),
        "evaluated": int(stats["evaluated_expectations"]),
        "successful": int(stats["successful_expectations"]),
        "failed": failed,
    }
