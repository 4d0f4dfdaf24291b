"""Test-wide setup: four fake CPU devices, so multi-device code runs on any machine.

Set before any test touches a JAX backend; tests that want one device build a
one-device mesh explicitly.
"""
import jax

jax.config.update("jax_num_cpu_devices", 4)
