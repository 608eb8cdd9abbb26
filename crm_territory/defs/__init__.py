"""The Dagster definitions, autoloaded (``dg.load_from_defs_folder``): one folder per domain, resources once.

Every module here is wiring only: assets, checks, jobs, sensors and the resources, each found by
the loader wherever it sits. The engine's logic lives in ``crm_territory.logic``; shared decorator
helpers in ``crm_territory.wiring``. ``dg scaffold defs dagster.asset <domain>/<name>.py`` adds an
asset here and ``dg list defs`` shows it.
"""
