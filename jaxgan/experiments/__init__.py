"""The seeds' experiments, run and reported by one command each.

  python -m jaxgan.experiments run NAME --scale=cpu|full --out=DIR
  python -m jaxgan.experiments report DIR... [--doc=docs/results.md]

`run` trains every job of experiment NAME into DIR (resuming what an earlier call left)
and writes DIR/results.json: every number with its protocol, commit, machine, scale and
wall time, and each job's own commit and machine (`--only` reruns one job). Training
folders go to DIR/runs/ (checkpoints: they stay on the machine); each job's last sample
grid is copied to DIR/last_grids/ for the report. `report` turns results.json files into the tables and figures of
docs/results.md. The experiments are listed in EXPERIMENTS (see each module's docstring).
"""
from jaxgan.experiments import seed000, seed001, seed002, seed003, stacked_mnist, toy2d

EXPERIMENTS = {e.name: e for e in (seed000.EXPERIMENT, toy2d.EXPERIMENT, seed001.EXPERIMENT,
                                   seed002.EXPERIMENT, seed003.EXPERIMENT,
                                   stacked_mnist.EXPERIMENT)}
