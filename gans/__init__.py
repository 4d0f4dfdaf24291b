"""GANs in JAX: every classic variant as a pair of Flax modules, one trainer for all."""
