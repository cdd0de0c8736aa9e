"""Process settings: nothing at import, one explicit ``initlab.configure()``, defaults on first training.

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
from initlab.training.grid import _devices
ensemble_devices = _devices()
print(json.dumps({"jax_devices": len(jax.devices()), "ensemble_devices": ensemble_devices}))
"""


def test_import_changes_neither_the_environment_nor_jax_settings() -> None:
    code = """
import json, os, sys
before = dict(os.environ)
import initlab, initlab.cli, initlab.initializers, initlab.training.loop, initlab.training.ensembles
import initlab.experiments.executors, initlab.report, initlab.reproduce, initlab.measure.propagation
initlab.initializer("he_normal")
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
jax_imported = "jax" in sys.modules
initlab.TrainConfig()  # validating a config builds its optimizer: optax imports JAX, initlab sets nothing
import jax
print(json.dumps({"changed": changed, "jax_imported": jax_imported, "devices": jax.config.jax_num_cpu_devices,
                  "cache": jax.config.jax_compilation_cache_dir}))
"""
    result = _run(code)
    assert result["out"] == {"changed": [], "jax_imported": False, "devices": -1, "cache": None}


@pytest.mark.parametrize(
    "prelude",
    [
        "import initlab",  # the defaults, applied by the first training (here: the ensemble's device query)
        "import jax\nimport initlab",  # JAX imported first, but nothing computed yet
        "import initlab\ninitlab.configure()\nimport jax.numpy as jnp\njnp.ones(3).block_until_ready()",
    ],
)
def test_ensembles_get_the_devices_asked_for_when_configured_in_time(prelude: str) -> None:
    result = _run(prelude + REPORT)
    assert result["out"] == {"jax_devices": 3, "ensemble_devices": 3}
    assert "RuntimeWarning" not in result["err"]


def test_a_backend_started_before_configure_is_kept_and_the_user_is_told_how_to_fix_it() -> None:
    result = _run("import initlab\nimport jax.numpy as jnp\njnp.ones(3).block_until_ready()" + REPORT)
    assert result["out"] == {"jax_devices": 1, "ensemble_devices": 1}
    assert "RuntimeWarning: initlab: JAX started with 1 CPU device(s) before initlab could ask for 3" in result["err"]
    assert "initlab.configure()" in result["err"]
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


def test_configure_is_explicit_idempotent_and_says_what_it_applied(tmp_path) -> None:
    code = f"""
import json, initlab, jax
first = initlab.configure(compilation_cache={str(tmp_path / 'xla')!r})
second = initlab.configure(compilation_cache=True)
print(json.dumps({{"first": [first.cpu_devices, first.compilation_cache], "second": [second.cpu_devices, second.compilation_cache],
                  "jax": [jax.config.jax_num_cpu_devices, jax.config.jax_compilation_cache_dir], "count": len(jax.devices())}}))
"""
    folder = str(tmp_path / "xla")
    result = _run(code)
    assert result["out"] == {"first": [3, folder], "second": [3, folder], "jax": [3, folder], "count": 3}


def test_the_first_training_applies_no_compilation_cache_unless_asked() -> None:
    code = """
import json, initlab
from initlab.runtime import ensure_configured
settings = ensure_configured()
print(json.dumps({"devices": settings.cpu_devices, "cache": settings.compilation_cache}))
"""
    assert _run(code)["out"] == {"devices": 3, "cache": None}


def test_the_cli_turns_the_compilation_cache_on(tmp_path) -> None:
    code = f"""
import json, os
os.environ["INITLAB_CACHE"] = {str(tmp_path)!r}
from initlab.cli._app import configure_process
configure_process()
import jax
print(json.dumps({{"cache": jax.config.jax_compilation_cache_dir}}))
"""
    assert _run(code)["out"] == {"cache": str(tmp_path / "xla")}


@pytest.mark.parametrize("value", ["0", "-2", "lots", "99999"])
def test_a_bad_device_count_in_the_environment_is_one_clear_error(value: str) -> None:
    code = """
import json, initlab
try:
    initlab.configure()
    print(json.dumps({"error": None}))
except initlab.InitlabError as error:
    print(json.dumps({"error": str(error)}))
"""
    error = _run(code, INITLAB_CPU_DEVICES=value)["out"]["error"]
    assert error is not None and error.startswith("INITLAB_CPU_DEVICES must be")
