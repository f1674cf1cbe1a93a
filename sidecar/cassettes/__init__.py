"""Record and replay, per upstream: a cassette file of the calls an upstream answered.

- :mod:`.file`: the cassette format (JSON lines), reading, appending within a size bound,
  redaction, bodies as text or base64;
- :mod:`.matching`: which recorded interaction answers a replayed call, and the closest one
  when none does;
- :mod:`.handler`: the wrapper of an upstream's terminal handler that records or replays.

Not here: the settings (:mod:`sidecar.config.cassette`), the pytest helpers
(:mod:`sidecar.testing`), and contract tests built on cassettes (:mod:`sidecar.contract`).
"""
