"""Developer and demo tools: the synthetic population and ``flp demo``.

The runtime (scheduler, job runner, HTTP service) never imports this package.
"""
