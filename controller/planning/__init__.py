"""The 24-hour plan: inputs, the linear program (HiGHS), and the keeper that falls back to the rules."""
