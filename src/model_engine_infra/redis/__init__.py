"""Redis connections whose credentials refresh before they expire."""

from .base import RedisConnection

__all__ = ["RedisConnection"]
