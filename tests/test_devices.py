"""One CPU device per core for ensembles, asked of JAX before it computes anything.

Each case runs in a fresh interpreter: a JAX backend, once started, keeps its device count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _run(code: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"INITLAB_CPU_DEVICES": "3"} | env
    completed = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return {"out": json.loads(completed.stdout.strip().splitlines()[-1]), "err": completed.stderr}


REPORT = """
import json, jax
from initlab.ensembles import _devices
print(json.dumps({"jax_devices": len(jax.devices()), "ensemble_devices": _devices()}))
"""


@pytest.mark.parametrize(
    "prelude",
    [
        "import initlab",  # the usual order
        "import jax\nimport initlab",  # JAX imported first, but nothing computed yet
        "import initlab\nimport jax.numpy as jnp\njnp.ones(3).block_until_ready()",  # the user computes after
    ],
)
def test_ensembles_get_the_devices_asked_for_when_initlab_comes_in_time(prelude: str) -> None:
    result = _run(prelude + REPORT)
    assert result["out"] == {"jax_devices": 3, "ensemble_devices": 3}
    assert "RuntimeWarning" not in result["err"]


def test_a_backend_started_before_initlab_is_kept_and_the_user_is_told_how_to_fix_it() -> None:
    result = _run("import jax.numpy as jnp\njnp.ones(3).block_until_ready()\nimport initlab" + REPORT)
    assert result["out"] == {"jax_devices": 1, "ensemble_devices": 1}
    assert "RuntimeWarning: initlab: JAX started with 1 CPU device(s) before initlab could ask for 3" in result["err"]
    assert "xla_force_host_platform_device_count=3" in result["err"]


@pytest.mark.parametrize(
    ("prelude", "env"),
    [
        ("import jax\njax.config.update('jax_num_cpu_devices', 1)\nimport initlab", {}),
        ("import initlab", {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}),
        ("import initlab", {"INITLAB_CPU_DEVICES": "1"}),
    ],
)
def test_a_device_count_chosen_by_the_user_is_left_alone_without_a_warning(prelude: str, env: dict) -> None:
    result = _run(prelude + REPORT, **env)
    assert result["out"] == {"jax_devices": 1, "ensemble_devices": 1}
    assert "RuntimeWarning" not in result["err"]
