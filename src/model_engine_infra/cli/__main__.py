"""``python -m model_engine_infra.cli``: the same as the ``model-engine-infra`` command."""

from . import main

main()
