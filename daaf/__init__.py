"""DAAF-ReID: Deep Attention Aware Feature learning for person re-identification."""

__version__ = "0.1.0"
