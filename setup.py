"""Packaging hook: ship ``cuda_ext/`` (the kernel sources) inside the wheel as ``attrib/_cuda_ext``.

The sources live at the repository root (kernels compile there with nvcc alone, without torch), but a
regular ``pip install`` must carry them too, or :mod:`attrib.kernels` could not JIT-build the extension
on a GPU machine and would fall back to the PyTorch path. Everything else is in ``pyproject.toml``.
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


setup(cmdclass={"build_py": BuildPyWithKernels})
