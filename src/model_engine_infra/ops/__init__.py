"""Operations: the checks a person runs against a deployment.

- `probes`: one probe per component (config, broker, storage, Redis, registry, secrets), the single
  place that decides what "configured" means and how each component is exercised;
- `doctor`: the preflight, every probe at once with a time limit (``model-engine-infra doctor``);
- `tour`: the main job end to end, using the same probes (``model-engine-infra demo``).

Nothing here imports the CLI: the command-line tool renders what these return.
"""
