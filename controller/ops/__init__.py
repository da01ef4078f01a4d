"""Operator tools over the control API or the audit database: the monthly report, commissioning."""
