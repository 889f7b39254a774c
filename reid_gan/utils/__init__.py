"""Shared utilities: atomic I/O (:mod:`.io`), stage running (:mod:`.task`), config-built loggers and
callbacks (:mod:`.instantiate`), weight files (:mod:`.weights`), artifacts (:mod:`.artifacts`).

Import from the submodules: this package imports nothing itself, so that light users (the renderer's
worker processes, say) do not pay for Lightning's import.
"""
