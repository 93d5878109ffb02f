"""The core package, the model list and the training options work without torch installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("torch", "lightning", "pytorch_lightning"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_core_and_registry_import_without_torch():
    out = _run(
        """
        import recforge, recforge.models.neural, recforge.training
        from recforge.models.registry import list_models, get_model_class
        from recforge.training import TrainingOptions
        from recforge.errors import RecforgeError
        names = {e.name for e in list_models()}
        assert {"mf-torch", "autorec", "neumf", "lightgcn", "two-tower"} <= names
        assert TrainingOptions(patience=2).patience == 2
        try:
            get_model_class("lightgcn")
        except RecforgeError as exc:
            assert "recforge[torch]" in str(exc), exc
        else:
            raise AssertionError("expected a RecforgeError naming the torch extra")
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
