"""The dashboard server: `create_app(settings)` returns a Starlette app (no torch imported).

Example:
    >>> from deepscope.server.app import Settings, create_app  # doctest: +SKIP
    >>> app = create_app(Settings(logdir=Path("runs")))  # doctest: +SKIP
"""
