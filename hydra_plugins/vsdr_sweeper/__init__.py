"""vsdr's Hydra sweeper (``conf/hydra/sweeper/validating.yaml``, the default of
``conf/config.yaml``): Hydra's basic sweeper, except that it composes every job's config and
runs vsdr's checks on it before it creates the sweep dir or launches the first job. A bad
value in any job stops the whole sweep with one sentence on stderr (exit 2), whatever the
launcher (``hydra/launcher=local``, ``slurm``, ``slurm_cpu``).

It lives in the ``hydra_plugins`` namespace because Hydra builds sweepers only from there."""
from __future__ import annotations

import sys
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser


class ValidatingSweeper(BasicSweeper):
    """``BasicSweeper`` whose ``sweep`` checks every job (``vsdr.experiments.sweep.first_problem``)
    before it launches any."""

    def sweep(self, arguments: list[str]) -> Any:
        from vsdr.experiments.sweep import first_problem

        assert self.hydra_context is not None and self.config is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        problem = first_problem(self.hydra_context.config_loader, self.config, jobs)
        if problem:
            print(f"vsdr: {problem}", file=sys.stderr)
            sys.exit(2)
        return super().sweep(arguments)
