"""Tests of goldwatch.runtimes (ONNX Runtime, torch, OIP v2 against a real MLServer)."""
