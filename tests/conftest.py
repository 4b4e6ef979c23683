"""Fixtures shared by several test modules (each is defined in the testing kit, next to what it serves)."""

from model_engine_infra.testing.conformance.images import ecr_moto  # noqa: F401  (moto ECR with IAM, and its keys)
