"""The preflight doctor's public home: ``from model_engine_infra.doctor import diagnose``.

The code lives in `model_engine_infra.ops.doctor`, beside the probes it shares with the demo tour.
"""

from .ops.doctor import CHECKS, CheckResult, Doctor, DoctorReport, diagnose

__all__ = ["CHECKS", "CheckResult", "Doctor", "DoctorReport", "diagnose"]
