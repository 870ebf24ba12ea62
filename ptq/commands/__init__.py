"""Subcommands of ``ptq``: every module here is imported by ``ptq.cli`` and registers with
``@ptq.cli.command(name, configure)``, so a feature adds a command without editing the CLI."""
