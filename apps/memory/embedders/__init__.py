"""Embedders: turn text into vectors, looked up by name from one registry.

An embedder's ``identity`` names the model *and* its dimension (``local-minilm/all-MiniLM-L6-v2@384``);
every chunk records the identity that embedded it, and search only compares vectors of the
workspace's current identity. Adding an embedder is adding a module that calls ``register``.
"""

from .base import Embedder, EmbeddingFailed, available, get_embedder, register, warm_up, warm_up_in_background

__all__ = [
    "Embedder",
    "EmbeddingFailed",
    "available",
    "get_embedder",
    "register",
    "warm_up",
    "warm_up_in_background",
]
