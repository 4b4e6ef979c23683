"""Providers are profiles: plain data naming each cloud's default backend of every kind.

No behaviour lives here; the registry (`model_engine_infra.registry`) resolves the names.
"""

# What `InfraConfig` builds when nothing names a provider, and what a Helm values file that omits
# cloud_provider means (the chart's own default).
DEFAULT_PROVIDER = "local"
HELM_DEFAULT_PROVIDER = "aws"
BUILTIN_PROVIDER_NAMES = ("aws", "azure", "gcp", "onprem", "local")
