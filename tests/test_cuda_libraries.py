"""The CUDA libraries both frameworks load on a GPU are in the venv, and load, on a machine without one.

A GPU node has to add only the NVIDIA driver (libcuda.so.1, nvidia-smi); every other CUDA library
comes from pip wheels in the venv: TensorFlow's CUDA 12 ones from its `and-cuda` extra, torch's
CUDA 13 ones from its own requirements. Each framework is checked in a subprocess of its own
(torch and TensorFlow in one process crash), which runs this file as a script and prints a JSON
report; the tests assert on the reports. What each framework expects:

- TensorFlow: the libraries its loader dlopens by name when it starts a GPU (the ``GetDsoHandle``
  calls in third_party/xla/xla/tsl/platform/default/dso_loader.cc, TF 2.21), each at the major
  version of the and-cuda requirement that ships it (nvidia-cufft-cu12>=11.2 → libcufft.so.11),
  looked up where that dlopen looks: the RUNPATH of TensorFlow's own libraries. The CUDA and cuDNN
  majors are those of ``tf.sysconfig.get_build_info()``. XLA also needs ptxas and libdevice.
- torch: every NVIDIA library that torch/lib/*.so link (DT_NEEDED), looked up in their RPATH; the
  CUDA runtime among them must be that of ``torch.version.cuda``.
- both: every shared library in the framework's NVIDIA wheels loads, including the cuDNN parts
  that libcudnn.so.9 opens only when first used.

Without a GPU nothing here calls into CUDA: loading proves the files are there and their own
dependencies resolve, not that kernels run (docs/slurm-and-gpus.md).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# TensorFlow's dlopen targets (dso_loader.cc), each with the pip project of the and-cuda extra that
# ships it, less its "-cuNN" suffix. Left out: libcuda.so.1 (the driver, the node's),
# nvinfer/nvinfer_plugin (TensorRT; checked absent from the build below) and nvshmem_host
# (NVSHMEM collectives across GPUs; not in the extra, and XLA uses it only when asked to).
TF_DLOPENED = {
    "cudart": "nvidia-cuda-runtime",
    "cublas": "nvidia-cublas",
    "cublasLt": "nvidia-cublas",
    "cufft": "nvidia-cufft",
    "cusolver": "nvidia-cusolver",
    "cusparse": "nvidia-cusparse",
    "cupti": "nvidia-cuda-cupti",
    "cudnn": "nvidia-cudnn",
    "nccl": "nvidia-nccl",
}
DRIVER = "libcuda.so.1"
# Only NVSHMEM's and cuFile's network plug-ins link these (InfiniBand, MPI, PMIx, OpenSHMEM,
# libfabric, UCX): multi-node transports, not needed to train on one GPU.
MULTI_NODE_LIBRARIES = ("libmlx5.so", "libmpi.so", "libpmix.so", "liboshmem.so", "libfabric.so", "libucs.so")
NVIDIA_LIBRARY = re.compile(r"^lib(cu|nv|nccl)")  # libcudart, libcublas, libnvrtc, libnccl, ...
SHARED_LIBRARY = re.compile(r"\.so(\.\d+)*$")


# --- ELF: what `readelf -d` shows, read in Python so no binutils are needed --------------------

SHT_DYNAMIC, DT_NEEDED, DT_RPATH, DT_RUNPATH = 6, 1, 15, 29


def elf_dynamic(path: Path) -> dict[int, list[str]]:
    """The string entries of a 64-bit little-endian ELF file's dynamic section, by tag."""
    with open(path, "rb") as f:
        header = f.read(64)
        (section_table,) = struct.unpack_from("<Q", header, 0x28)
        entry_size, count = struct.unpack_from("<HH", header, 0x3A)
        f.seek(section_table)
        table = f.read(entry_size * count)
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, ...
        sections = [struct.unpack_from("<IIQQQQI", table, i * entry_size) for i in range(count)]
        dynamic = next((s for s in sections if s[1] == SHT_DYNAMIC), None)
        if dynamic is None:
            return {}
        strtab = sections[dynamic[6]]
        f.seek(dynamic[4])
        entries = f.read(dynamic[5])
        f.seek(strtab[4])
        strings = f.read(strtab[5])
    found: dict[int, list[str]] = {}
    for tag, value in struct.iter_unpack("<qQ", entries):
        if tag in (DT_NEEDED, DT_RPATH, DT_RUNPATH):
            found.setdefault(tag, []).append(strings[value : strings.index(b"\0", value)].decode())
    return found


def needed(path: Path) -> list[str]:
    return elf_dynamic(path).get(DT_NEEDED, [])


def search_path(path: Path) -> list[Path]:
    """The folders the dynamic loader searches for what ``path`` loads ($ORIGIN expanded)."""
    dynamic = elf_dynamic(path)
    entries = dynamic.get(DT_RUNPATH, []) + dynamic.get(DT_RPATH, [])
    folders = [entry.replace("$ORIGIN", str(path.parent)) for line in entries for entry in line.split(":")]
    return [Path(os.path.normpath(folder)) for folder in dict.fromkeys(folders)]


# --- finding and loading -------------------------------------------------------------------


def find_libraries(sonames: list[str], folders: list[Path]) -> dict[str, str | None]:
    """Each soname's file in the first folder that has it, as the loader would pick; None if none."""
    return {
        name: next((str(folder / name) for folder in folders if (folder / name).is_file()), None) for name in sonames
    }


def load_errors(paths: list[str]) -> dict[str, str]:
    """dlopen each file by path (resolving its own dependencies); the error of each that fails."""
    errors = {}
    for path in paths:
        try:
            ctypes.CDLL(path)
        except OSError as error:
            errors[path] = str(error)
    return errors


def missing_dependency(error: str) -> str:
    """The library a dlopen error says it could not find ("libcuda.so.1: cannot open ..."), else ""."""
    match = re.search(r"(lib[\w.+-]+\.so[\d.]*): cannot open shared object file", error)
    return match.group(1) if match else ""


def excused(error: str) -> bool:
    """A load error this GPU-less machine may show: only the driver, or a multi-node transport, is missing."""
    dependency = missing_dependency(error)
    return dependency == DRIVER or dependency.startswith(MULTI_NODE_LIBRARIES)


# --- wheels --------------------------------------------------------------------------------


def required_distributions(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """The installed distributions ``name[extras]`` pulls in, directly or not (itself excluded)."""
    found: set[str] = set()
    todo = [(name, extras)]
    seen = set(todo)
    while todo:
        dist, dist_extras = todo.pop()
        for line in metadata.requires(dist) or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in dist_extras | {""}]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in environments):
                continue
            key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
            if key not in seen:
                seen.add(key)
                found.add(key[0])
                todo.append(key)
    return found


def wheel_libraries(distributions: set[str]) -> list[str]:
    """The shared libraries under nvidia/ that these distributions installed."""
    paths = []
    for name in sorted(distributions):
        dist = metadata.distribution(name)
        paths += [
            str(dist.locate_file(file))
            for file in dist.files or []
            if str(file).startswith("nvidia/") and SHARED_LIBRARY.search(str(file))
        ]
    return paths


def soname_major(distribution: str) -> str:
    """The library major a requirement on an NVIDIA wheel asks for (its lower bound's major):
    nvidia-cufft-cu12>=11.2.3.61 ships libcufft.so.11."""
    requirement = next(
        Requirement(line)
        for line in metadata.requires("tensorflow") or []
        if canonicalize_name(Requirement(line).name) == distribution
    )
    lower = next(spec.version for spec in requirement.specifier if spec.operator == ">=")
    return lower.split(".")[0]


def cudnn_cuda_major(found: dict[str, str | None]) -> int | None:
    """The CUDA major the cuDNN found was built for (cudnnGetCudartVersion: 12090 for CUDA 12.9);
    no GPU needed. None when no cuDNN was found."""
    path = next((p for name, p in found.items() if name.startswith("libcudnn.so.") and p), None)
    if path is None:
        return None
    cudnn = ctypes.CDLL(path)
    cudnn.cudnnGetCudartVersion.restype = ctypes.c_size_t
    return cudnn.cudnnGetCudartVersion() // 1000


# --- one report per framework, each run in its own process -----------------------------------


def tensorflow_report() -> dict:
    import tensorflow as tf  # only in this subprocess

    build = dict(tf.sysconfig.get_build_info())
    cuda_major = build["cuda_version"].split(".")[0]
    tf_dir = Path(tf.__file__).parent
    sonames = [f"lib{name}.so.{soname_major(f'{project}-cu{cuda_major}')}" for name, project in TF_DLOPENED.items()]
    folders = search_path(tf_dir / "libtensorflow_framework.so.2") + search_path(tf_dir / "libtensorflow_cc.so.2")
    found = find_libraries(sonames, folders)
    extra = required_distributions("tensorflow", frozenset({"and-cuda"})) - required_distributions("tensorflow")
    # XLA compiles its kernels with ptxas and libdevice, which it looks for under ../nvidia/cuda_nvcc
    # next to its libraries for a CUDA 12 build (CandidateCudaRoots, cuda_root_path.cc).
    nvcc = tf_dir.parent / "nvidia" / "cuda_nvcc"
    return {
        "build": build,
        "cuda_major": int(cuda_major),
        "expected": found,
        "extra": sorted(extra),
        "load_errors": load_errors([p for p in found.values() if p] + wheel_libraries(extra)),
        "cudnn_cuda_major": cudnn_cuda_major(found),
        "ptxas": tool_version(nvcc / "bin" / "ptxas"),
        "libdevice": (nvcc / "nvvm" / "libdevice" / "libdevice.10.bc").is_file(),
    }


def tool_version(path: Path) -> str | None:
    """``ptxas --version``'s "release 12.9" line; None when it is missing or does not run."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return None
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else None


def torch_report() -> dict:
    import torch  # only in this subprocess

    torch_lib = Path(torch.__file__).parent / "lib"
    found: dict[str, str | None] = {}
    for binary in sorted(torch_lib.glob("*.so")):
        wanted = [name for name in needed(binary) if NVIDIA_LIBRARY.match(name) and name != DRIVER]
        found.update(find_libraries([n for n in wanted if n not in found], search_path(binary)))
    wheels = {name for name in required_distributions("torch") if name.startswith("nvidia-")}
    return {
        "cuda_version": torch.version.cuda,
        "cuda_major": int(torch.version.cuda.split(".")[0]),
        "expected": found,
        "wheels": sorted(wheels),
        "load_errors": load_errors([p for p in found.values() if p] + wheel_libraries(wheels)),
        "cudnn_cuda_major": cudnn_cuda_major(found),
        # torch's own compatibility check (raises when the runtime cuDNN is too old); no GPU needed.
        "cudnn_compiled": list(torch._C._cudnn.getCompileVersion()),
        "cudnn_runtime": list(torch._C._cudnn.getRuntimeVersion()) if torch.backends.cudnn.version() else None,
    }


REPORTS = {"tensorflow": tensorflow_report, "torch": torch_report}


def run_report(framework: str) -> dict:
    # LD_LIBRARY_PATH is searched before a library's RUNPATH: unset, only the venv can answer.
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, __file__, framework], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tensorflow():
    return run_report("tensorflow")


@pytest.fixture(scope="module")
def torch():
    return run_report("torch")


@pytest.fixture(params=["tensorflow", "torch"])
def report(request):
    return request.getfixturevalue(request.param)


# --- the tests -----------------------------------------------------------------------------


def test_tensorflow_expects_the_cuda_and_cudnn_of_its_build(tensorflow):
    build = tensorflow["build"]
    assert build["is_cuda_build"] and not build["is_tensorrt_build"], build  # TensorRT: add nvinfer above
    assert f"libcudart.so.{tensorflow['cuda_major']}" in tensorflow["expected"]
    assert f"libcudnn.so.{build['cudnn_version']}" in tensorflow["expected"]
    assert all(name.endswith(f"-cu{tensorflow['cuda_major']}") for name in tensorflow["extra"]), tensorflow["extra"]


def test_torch_expects_the_cuda_runtime_of_its_build(torch):
    assert f"libcudart.so.{torch['cuda_major']}" in torch["expected"], torch["expected"]
    assert len(torch["expected"]) >= 10, torch["expected"]  # cudart, cublas(Lt), cudnn, cufft, nccl, ...


def test_every_expected_library_is_in_the_venv(report):
    missing = sorted(name for name, path in report["expected"].items() if path is None)
    assert not missing, f"not found where the framework looks: {missing}"
    venv = Path(sys.prefix).resolve()
    outside = {name: path for name, path in report["expected"].items() if not Path(path).resolve().is_relative_to(venv)}
    assert not outside, outside


def test_every_library_loads_with_only_the_driver_missing(report):
    errors = {path: error for path, error in report["load_errors"].items() if not excused(error)}
    assert not errors, json.dumps(errors, indent=1)


def test_xla_finds_ptxas_and_libdevice_of_its_cuda(tensorflow):
    assert tensorflow["ptxas"] is not None and tensorflow["ptxas"].split(".")[0] == str(tensorflow["cuda_major"])
    assert tensorflow["libdevice"]


# nvidia-cudnn-cu12 (TensorFlow's) and nvidia-cudnn-cu13 (torch's) install the same files,
# nvidia/cudnn/lib/libcudnn*.so.9, and nvidia-nccl-cu12 / -cu13 both nvidia/nccl/lib/libnccl.so.2:
# whichever pip installs last wins. `make setup` reinstalls TensorFlow's two last, so every
# machine gets the same files (docs/slurm-and-gpus.md, "One cuDNN for both").
SHARED_BY_BOTH = ("nvidia-cudnn-cu13", "nvidia-nccl-cu13", "nvidia-nvshmem-cu13")


def test_the_shared_cudnn_is_tensorflows_cuda_12_build(tensorflow, torch):
    """TensorFlow gets the cuDNN of its CUDA; torch (CUDA 13) gets the same cuDNN 9, whose
    version its own check accepts (torch.backends.cudnn.version(): runtime minor >= compiled)."""
    assert tensorflow["cudnn_cuda_major"] == tensorflow["cuda_major"] == 12
    assert torch["cudnn_cuda_major"] == 12
    assert torch["cudnn_runtime"] >= torch["cudnn_compiled"], (torch["cudnn_runtime"], torch["cudnn_compiled"])


def files_changed_since_install() -> list[str]:
    """Shared libraries of NVIDIA wheels whose size differs from their wheel's RECORD: overwritten."""
    changed = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if not name.startswith("nvidia-"):
            continue
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if file.size and SHARED_LIBRARY.search(str(file)) and path.is_file() and path.stat().st_size != file.size:
                changed.append(f"{name}: {file}")
    return sorted(changed)


def test_only_torchs_cudnn_and_nccl_files_were_overwritten():
    """The overlap is exactly the two known pairs of wheels, resolved in TensorFlow's favour: a
    new overlap (another wheel pair after an upgrade), or the other winner, fails here."""
    changed = files_changed_since_install()
    assert changed, "no overwritten file: has torch's or TensorFlow's CUDA changed? update SHARED_BY_BOTH"
    assert all(c.startswith(tuple(f"{d}:" for d in SHARED_BY_BOTH)) for c in changed), "\n".join(changed)


# --- the checks themselves catch what they should ---------------------------------------------


def test_a_library_not_in_any_folder_is_reported_missing(tmp_path):
    (tmp_path / "libfound.so.1").write_bytes(b"")
    assert find_libraries(["libfound.so.1", "libgone.so.2"], [tmp_path / "nowhere", tmp_path]) == {
        "libfound.so.1": str(tmp_path / "libfound.so.1"),
        "libgone.so.2": None,
    }


def test_a_library_that_does_not_load_is_reported(tmp_path):
    broken = tmp_path / "libbroken.so.1"
    broken.write_bytes(b"not an ELF file")
    errors = load_errors([str(broken)])
    assert list(errors) == [str(broken)] and not excused(errors[str(broken)])


def test_only_a_missing_driver_or_network_transport_is_excused():
    assert excused("libcudnn_x.so.9: libcuda.so.1: cannot open shared object file: No such file or directory")
    assert excused("nvshmem_transport_ucx.so.3: libucs.so.0: cannot open shared object file: No such file")
    assert not excused("libcudnn.so.9: libcublasLt.so.12: cannot open shared object file: No such file")


def test_elf_reader_sees_what_the_loader_sees():
    """On a file whose dynamic section is known: libcublas links libcublasLt, found next to it."""
    cublas = next(Path(p) for p in wheel_libraries({"nvidia-cublas-cu12"}) if p.endswith("libcublas.so.12"))
    assert "libcublasLt.so.12" in needed(cublas)
    assert cublas.parent in search_path(cublas)


if __name__ == "__main__":
    print(json.dumps(REPORTS[sys.argv[1]]()))
