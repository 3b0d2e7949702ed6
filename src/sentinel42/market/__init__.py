"""Market data: price sources (yfinance, replay), validation, the NYSE calendar, refresh.

Submodules are imported where needed so that importing this package stays cheap:
``base`` (the PriceSource port), ``calendar``, ``validate``, ``yahoo``, ``replay``, ``refresh``,
``record`` and ``bench``.
"""
