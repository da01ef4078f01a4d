"""IPMI/DCMI server-power driver."""
