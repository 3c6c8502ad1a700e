"""vsdr's entry point: compose the Hydra config, run one job (see vsdr.experiments.job)."""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import vsdr  # noqa: F401 - registers vsdr's config resolvers (conf/ uses ${vsdr.tuned_zeta:})


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from vsdr.console import quiet_logs
    from vsdr.errors import ConfigError, DDPWorkerDone, JobFault
    from vsdr.experiments.job import run_job

    quiet_logs()
    try:
        run_job(cfg, HydraConfig.get().runtime.output_dir)
    except DDPWorkerDone:
        return  # a DDP worker's part is done; rank 0 runs the job
    except ConfigError as e:
        stop(f"vsdr: {e}", 2)
    except JobFault as e:
        stop(f"vsdr: {e}", 3)


def stop(sentence: str, status: int) -> None:
    """End the job with ``sentence`` on stderr and in its log file (Hydra's ``run.log``; not
    logged to the console too) and exit ``status``."""
    from vsdr.console import log_to_files

    log_to_files(sentence)
    print(sentence, file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    from vsdr.experiments.preflight import launcher_problem
    from vsdr.experiments.writer import output_dir_problem

    # Hydra creates the output (sweep) dir before any vsdr code runs: check first
    problem = launcher_problem(sys.argv[1:]) or output_dir_problem(sys.argv[1:])
    if problem:
        print(f"vsdr: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
