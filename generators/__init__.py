"""Generative models of calcium traces (CalciumGAN)."""
