"""DAAF-ReID: Deep Attention Aware Feature learning for person re-identification."""

__version__ = "0.1.0"


def __getattr__(name):
    # the Python API is imported when first used, so that `import daaf` stays light
    if name == "FeatureExtractor":
        from daaf.engine.feature_extractor import FeatureExtractor

        return FeatureExtractor
    raise AttributeError(f"module 'daaf' has no attribute {name!r}")
