"""Operations: alerts and notifications through Prefect's server, retention of stored data.

``alerts`` and ``notify`` are the one place outside ``tasks`` and ``flows/`` that imports Prefect:
they install automations and notification blocks through the Prefect API.
"""
