"""Plaintext models trained inside one hospital: the ICU Transformer and its DP-SGD adapter."""

from crypten_fl.fedtrain.models.transformer import ICUTransformer

__all__ = ["ICUTransformer"]
