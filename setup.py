"""Packaging hook: ship ``cuda_ext/`` (the kernel sources) as ``attrib/_cuda_ext`` and ``apps/`` (the Streamlit
inspector) as ``attrib/_apps`` inside the wheel.

Both live at the repository root (kernels compile there with nvcc alone, without torch; the app is a face, not part
of the library), but a regular ``pip install`` must carry them too, or :mod:`attrib.kernels` could not JIT-build
the extension on a GPU machine and ``attrib app`` would have nothing to run. Everything else is in
``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithKernels(build_py):
    def run(self) -> None:
        super().run()
        dst = Path(self.build_lib) / "attrib" / "_cuda_ext"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted((ROOT / "cuda_ext").iterdir()):
            if f.suffix in {".cu", ".cuh", ".h", ".cpp"}:
                shutil.copy2(f, dst / f.name)
        apps = Path(self.build_lib) / "attrib" / "_apps"
        apps.mkdir(parents=True, exist_ok=True)
        for f in sorted((ROOT / "apps").glob("*.py")):
            shutil.copy2(f, apps / f.name)


setup(cmdclass={"build_py": BuildPyWithKernels})
