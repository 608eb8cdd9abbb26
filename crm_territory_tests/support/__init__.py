"""What the tests share that is not a fixture: paths, the seed sample, small helpers. Not collected as tests."""

from pathlib import Path

import dagster as dg
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]

# The seed README's sample, verbatim: our contract.
SEED_SAMPLE = (
    "client_id,client_name,region,segment,parent_org,advisor_email\n"
    "1,Atlas Capital Partners,Northeast,Institutional,Atlas Holdings,advisor1@example.com\n"
    "2,Beacon Wealth Management,Northeast,Retail,Beacon Group,advisor2@example.com\n"
    "3,Crescent Advisory Group,Midwest,Institutional,Crescent Holdings,advisor3@example.com\n"
)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# Runs in tests log at WARNING: the assertions read events, not the console.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def error_text(event: dg.DagsterEvent) -> str:
    """A step failure's message and the messages of its causes, joined."""
    error, parts = event.step_failure_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return " | ".join(parts)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """The asset keys a run materialized."""
    return {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
