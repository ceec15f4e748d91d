"""morec: ID-based and modality-based item encoders under one recommender backbone."""
__version__ = "0.1.0"
