"""Test helpers for code that uses model_engine_infra: real local servers and a pytest plugin.

``servers`` starts redis-server, moto, Azurite, fake-gcs-server and a Distribution registry on
127.0.0.1; ``pytest_plugin`` exposes them as session fixtures.
"""
