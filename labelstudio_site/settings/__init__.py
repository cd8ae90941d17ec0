"""Settings modules: ``base`` (demo and development), ``production`` and ``test``.

Every value comes from one environment variable read through ``env`` in ``base``; the README's
configuration table lists them all.
"""
