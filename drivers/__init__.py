"""Field drivers: translate between one protocol and readings / commands, nothing more."""
