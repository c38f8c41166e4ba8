"""Writes container images as one `docker save` archive, without a Docker engine or a registry.

    python3 image.py OUT.tar SPEC.json

SPEC.json: {"base": "<root filesystem tar>", "images": [{"name": "registry.k8s.io/pause:3.10.2",
"base": false, "files": {"/pause": "<host path>"}, "entrypoint": ["/pause"], "cmd": null,
"env": ["PATH=..."]}, ...]}. An image with "base": true has the root filesystem tar as its first
layer (shared by all of them: stored once in the archive, and once in containerd's content store
when `ctr images import` loads it); its files make a second layer, owned by root, mode 0755. The
archive is what `docker load` and `ctr images import` read: manifest.json, one config per image,
one directory per layer. The base layer leaves out device nodes (a container gets its /dev from
the runtime).
"""

from __future__ import annotations

import hashlib
import io
import json
import pathlib
import sys
import tarfile
from typing import Any

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _base_layer(source: pathlib.Path, dest: pathlib.Path) -> None:
    """The root filesystem as a layer: the same entries, less device nodes and what is under /dev."""
    with tarfile.open(source) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for member in src:
            name = member.name.removeprefix("./")
            if member.ischr() or member.isblk() or member.isfifo():
                continue
            if name.startswith("dev/"):
                continue
            if name in ("", "."):
                continue
            member.name = name
            if member.isfile():
                out.addfile(member, src.extractfile(member))
            else:
                out.addfile(member)


def _files_layer(files: dict[str, str], dest: pathlib.Path) -> None:
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        dirs: set[str] = set()
        for target in sorted(files):
            parts = target.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in dirs:
                    dirs.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    out.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            source = pathlib.Path(files[target])
            info.size = source.stat().st_size
            info.mode = 0o755
            with source.open("rb") as handle:
                out.addfile(info, handle)


def main(out: pathlib.Path, spec_path: pathlib.Path) -> None:
    spec: dict[str, Any] = json.loads(spec_path.read_text())
    work = out.with_name(out.name + ".parts")
    work.mkdir(exist_ok=True)
    layers: list[tuple[str, pathlib.Path]] = []  # (diff id, file) in archive order
    base_id = ""
    if any(image.get("base") for image in spec["images"]):
        base_tar = work / "base.tar"
        _base_layer(pathlib.Path(spec["base"]), base_tar)
        base_id = _sha256_file(base_tar)
        layers.append((base_id, base_tar))
    manifest = []
    configs: list[tuple[str, bytes]] = []
    for index, image in enumerate(spec["images"]):
        diff_ids = [base_id] if image.get("base") else []
        if image.get("files"):
            layer = work / f"files-{index}.tar"
            _files_layer(image["files"], layer)
            layer_id = _sha256_file(layer)
            layers.append((layer_id, layer))
            diff_ids.append(layer_id)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": EPOCH,
            "config": {
                "Env": image.get("env") or [DEFAULT_PATH],
                "Entrypoint": image.get("entrypoint"),
                "Cmd": image.get("cmd"),
                "User": image.get("user", ""),
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
            "history": [{"created": EPOCH, "created_by": "tests/kind/image.py"} for _ in diff_ids],
        }
        data = json.dumps(config, sort_keys=True).encode()
        config_name = hashlib.sha256(data).hexdigest() + ".json"
        configs.append((config_name, data))
        repo_tag = image["name"].removeprefix("docker.io/")
        manifest.append(
            {"Config": config_name, "RepoTags": [repo_tag], "Layers": [f"{d}/layer.tar" for d in diff_ids]}
        )
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as archive:
        seen: set[str] = set()
        for layer_id, path in layers:
            if layer_id in seen:
                continue
            seen.add(layer_id)
            archive.add(path, arcname=f"{layer_id}/layer.tar")
        for name, data in configs:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
