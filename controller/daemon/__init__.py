"""The service: the tick cycle (read, step, write), driver supervision, persistence, history,
status, reload, the control API, metrics, systemd notification and logging."""
