"""Adapters that give existing control planes the interfaces they already call.

`model_engine_infra.compat.llm_engine` serves scaleapi/llm-engine's ``model_engine_server``.
"""
