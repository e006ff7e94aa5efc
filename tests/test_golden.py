"""Every config trains what it trained when tests/golden/params_3steps.npz was recorded.

The golden parameters (tests/golden.py: 3 steps of each config at tiny widths) pin the
behaviour of the step across refactors. Float re-association may move the last bits,
so the bound is 1e-6 absolute; anything larger is a change of behaviour, to be
explained in the commit that records a new golden file (python -m tests.golden).
"""
import json

import numpy as np
import pytest

from tests import golden

TOLERANCE = 1e-6


def test_golden_file_is_intact_and_covers_every_config():
  recorded = json.loads(golden.GOLDEN.with_suffix('.json').read_text())
  assert sorted(recorded['sha256']) == golden.configs()
  for name, digest in recorded['sha256'].items():
    assert golden.sha256(golden.load(name)) == digest, f'{name}: golden arrays were altered'


@pytest.mark.parametrize('name', golden.configs())
def test_config_reproduces_its_golden_parameters(name):
  want = golden.load(name)
  got = golden.params_after_steps(name)
  assert sorted(got) == sorted(want), f'{name}: the parameter tree changed'
  worst = max(float(np.max(np.abs(got[k] - want[k]))) for k in want)
  assert worst <= TOLERANCE, f'{name}: parameters differ from the golden file by {worst:.3g}'
