"""When assets run by themselves (declarative automation), in one place.

- ``DAILY_PULL`` on the roots (the CRM API pull and the rules in force): every day at 06:00 UTC.
- ``FOLLOW_UPSTREAM`` (``eager``) on everything below them: an asset runs when a table it reads was
  updated, in the same run as its parents when they are requested together, and never while a
  parent is missing or being written. A drop-sensor run that rebuilds everything leaves nothing to do.
- The preview of a candidate rules file runs only when asked for.

The automation sensor (``defs/sources/automation.py``) evaluates these conditions every 30 s.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

DAILY_CRON = "0 6 * * *"
DAILY_PULL = dg.AutomationCondition.on_cron(DAILY_CRON, "UTC")
FOLLOW_UPSTREAM = dg.AutomationCondition.eager()
# assignments_fact should never be more than a day old (warn) and is overdue after 26 hours (the daily pull failed)
ASSIGNMENTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=24))
