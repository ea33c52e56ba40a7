"""Fault-matrix suite (placeholder docstring, completed below)."""
