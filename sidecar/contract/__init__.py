"""Contract tests: a Pact's HTTP interactions replayed through a running sidecar.

- :mod:`.pact`: reading a pact file (specification V2, V3 and V4 HTTP interactions);
- :mod:`.compare`, :mod:`.rules`, :mod:`.dates`: Pact's matching rules, comparing what the
  provider answered with what the consumer expects;
- :mod:`.verify`: the verifier: a sidecar started from the config, each interaction's provider
  states set up, the request sent through the sidecar's own chain, a verdict per interaction;
- :mod:`.from_cassette`: a V3 consumer pact written from a recorded cassette;
- :mod:`.cli`: ``sidecar contract verify`` and ``sidecar contract pact-from-cassette``.

Not here: recording and replaying (:mod:`sidecar.cassettes`).
"""
