"""The plugin authors' kit: ``sidecar plugin new`` (:mod:`.scaffold`, its templates under
``templates/``) and the test servers :mod:`sidecar.testing` offers (:mod:`.redis_server`).

Nothing here runs in a serving sidecar; importing this package imports none of its modules.
"""
