"""One module per group of `mimic` commands; each registers its commands with `mimic.cli.command`."""
