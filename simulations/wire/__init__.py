"""The simulated plant served over the real protocols (Modbus TCP, OPC-UA, IPMI/RMCP+)."""
