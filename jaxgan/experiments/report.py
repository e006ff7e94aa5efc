"""From results.json files to the markdown tables and PNG figures of docs/results.md.

`render` asks each experiment's own `report` for its section. `update_doc` puts each
section between marker comments in the document, so the hand-written reading around
the tables stays and every number inside them comes from a results.json:

  <!-- results:seed000:cpu -->
  ... generated ...
  <!-- /results:seed000:cpu -->
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import re
from typing import Iterable, Sequence

import numpy as np

from jaxgan.errors import UserError

# Figures are linked relative to this folder (where docs/results.md lives).
DOC_DIR = pathlib.Path('docs')


def num(x, digits: int = 2) -> str:
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return '-'
  return f'{x:.{digits}f}'


def mean_std(values: Iterable[float], digits: int = 2) -> str:
  """'m +- s' over seeds ('m' alone for one value, '-' for none); NaNs are skipped."""
  v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
  if not v:
    return '-'
  if len(v) == 1:
    return num(v[0], digits)
  return f'{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f}'


def epoch_series(members: Sequence[dict], field: str, x: str = 'epoch'):
  """(x values, float array [members, epochs] of `field`) over the epochs every member
  reached; a missing value is NaN."""
  n = min(len(m['per_epoch']) for m in members)
  ys = np.array([[e.get(field, np.nan) for e in m['per_epoch'][:n]] for m in members], float)
  return [e[x] for e in members[0]['per_epoch'][:n]], ys


def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  out = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  out += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
  return '\n'.join(out)


def rel(path: pathlib.Path) -> str:
  """A figure's link from DOC_DIR."""
  return os.path.relpath(pathlib.Path(path).resolve(), DOC_DIR.resolve())


def load(path: str | pathlib.Path) -> dict:
  """A results.json (or the folder holding one), with '_dir' set to its folder."""
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / 'results.json'
  if not path.is_file():
    raise UserError(f'no results.json at {path}; run the experiment first '
                    '(python -m jaxgan.experiments run NAME --out=DIR)')
  results = json.loads(path.read_text())
  if results.get('schema') != 1 or 'experiment' not in results:
    raise UserError(f'{path} is not a jaxgan experiment results.json (schema 1)')
  if results.get('smoke'):
    raise UserError(f'{path} is a --smoke run (one step per job): it has no results to report')
  results['_dir'] = str(path.parent)
  return results


def header(results: dict) -> str:
  """The provenance line every section starts with."""
  m = results['machine']
  scale = ('full scale (the published protocol)' if results['scale'] == 'full'
           else '**reduced scale (`--scale=cpu`)**: fewer epochs and seeds than published')
  return (f'{scale}; {_where(results)}; {results["updated"][:10]}; '
          f'{results.get("wall_s", 0) / 60:.0f} min of training.{_jobs_elsewhere(results)}')


def _where(record: dict) -> str:
  """'cpu x1 (2 CPU cores, AMD EPYC), jax 0.10.2; commit `abc` (uncommitted changes)'."""
  m = record['machine']
  cores = f'{m["cpu_count"]} CPU cores' + (f', {m["cpu_model"]}' if m.get('cpu_model') else '')
  dirty = ' (uncommitted changes)' if record.get('dirty') else ''
  return (f'{m["device_kind"]} x{m["devices"]} ({cores}), jax {m["jax"]}; '
          f'commit `{record["commit"][:10]}`{dirty}')


def _jobs_elsewhere(results: dict) -> str:
  """The jobs last trained at another commit or machine than the header (the last
  invocation) names. results.json records each job's since 2026-12-01; when some jobs
  have a record, the ones without are named too: an earlier invocation trained them."""
  top = _where(results)
  other, unrecorded = {}, []
  for name, job in results['jobs'].items():
    if 'commit' in job and 'machine' in job:
      if _where(job) != top:
        other.setdefault(_where(job), []).append(name)
    else:
      unrecorded.append(name)
  text = ''.join(f' Jobs {", ".join(names)}: {where}.' for where, names in other.items())
  if unrecorded and len(unrecorded) < len(results['jobs']):
    text += (f' Jobs {", ".join(unrecorded)}: trained by an earlier invocation, whose commit '
             'and machine results.json did not record per job.')
  return text


def render(results: dict, figures: pathlib.Path, experiments: dict) -> str:
  exp = experiments.get(results['experiment'])
  if exp is None:
    raise UserError(f'unknown experiment {results["experiment"]!r} in {results["_dir"]}')
  out_dir = results['_dir']
  command = (f'python -m jaxgan.experiments run {exp.name} --scale={results["scale"]} '
             f'--out={out_dir} && python -m jaxgan.experiments report {out_dir}')
  return '\n'.join([header(results), '', f'Regenerate: `{command}`', '',
                    exp.report(results, figures)])


def markers(results: dict) -> tuple[str, str]:
  tag = f'results:{results["experiment"]}:{results["scale"]}'
  return f'<!-- {tag} -->', f'<!-- /{tag} -->'


def update_doc(doc: pathlib.Path, sections: list[tuple[dict, str]]) -> None:
  """Replaces each section's marked block in `doc` (appending it when absent)."""
  text = doc.read_text() if doc.is_file() else '# Results\n'
  for results, body in sections:
    begin, end = markers(results)
    block = f'{begin}\n{body}\n{end}'
    pattern = re.compile(re.escape(begin) + '.*?' + re.escape(end), re.S)
    if pattern.search(text):
      text = pattern.sub(lambda _: block, text)
    else:
      text = text.rstrip('\n') + f'\n\n## {results["title"]} ({results["scale"]})\n\n{block}\n'
  doc.write_text(text)
