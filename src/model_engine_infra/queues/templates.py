"""Re-export of `model_engine_infra.brokers.templates` (the SQS broker's rule and the delegate share it)."""

from ..brokers.templates import PLACEHOLDERS, SAMPLE_VALUES, placeholders_in, render_template

__all__ = ["PLACEHOLDERS", "SAMPLE_VALUES", "placeholders_in", "render_template"]
