"""The live dashboard on the admin port: ``/dashboard`` (one self-contained page) and
``/dashboard/data`` (the JSON it refreshes from, every second).

- :mod:`~sidecar.dashboard.window`: the recent window (snapshot ring, rates, percentiles);
- :mod:`~sidecar.dashboard.view`: the JSON, read from the sidecar's live objects;
- :mod:`~sidecar.dashboard.endpoints`: the two aiohttp handlers; ``page.html`` the page.

Everything is computed when someone reads the endpoint: the request path does not know the
dashboard exists. ``docs/operations.md`` (Dashboard) says what each column means.
"""
