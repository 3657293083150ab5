"""pytest plugin: the ``graphkit_emulator`` fixture (filled in by the emulator work)."""
