"""OPC-UA field driver."""
