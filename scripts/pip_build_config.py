"""The host's pip configuration, re-expressed for a container build on this host.

Some build hosts reach the package index only through a TLS-intercepting proxy whose CA sits in
the host's bundle, or carry local wheels (find-links, file:// indexes) that must win over the
index (a CPU-only torch, say). A build container sees none of that. This reads what the host's pip
is configured with (`pip config list`: files and PIP_* variables), copies the CA bundle and the
constraints file into OUT, writes OUT/pip.conf pointing at them, and prints the podman `-v`
mounts a build needs, one per line: OUT itself, plus every local directory the configuration
names, each at the same path. Nothing here is hard-coded; a host with no pip configuration gets an
empty pip.conf and a single mount.

    python scripts/pip_build_config.py OUT MOUNT_POINT  ->  stdout and OUT/mounts: the mounts
                                                          OUT/build-args: NAME=VALUE build arguments
"""

from __future__ import annotations

import configparser
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

#: Keys whose values are copied unchanged: they name no local files.
PLAIN_KEYS: Final = frozenset(
    {"timeout", "default-timeout", "retries", "trusted-host", "proxy", "disable-pip-version-check"}
)
#: Keys whose values list locations, local or remote.
LOCATION_KEYS: Final = ("index-url", "extra-index-url", "find-links")
#: Keys naming one local file, copied into OUT under this name.
FILE_KEYS: Final = {"cert": "ca.crt", "constraint": "constraints.txt"}
LINE: Final = re.compile(r"^(?P<scope>[^.]*)\.(?P<key>[\w-]+)='(?P<value>.*)'$")


def host_settings() -> dict[str, str]:
    """key -> value as the host's pip sees it; PIP_* variables win over files, as in pip."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    by_scope: dict[str, dict[str, str]] = {"file": {}, "env": {}}
    for line in listed.splitlines():
        if match := LINE.match(line.strip()):
            scope = "env" if match["scope"] == ":env:" else "file"
            by_scope[scope][match["key"]] = match["value"]
    settings = by_scope["file"] | by_scope["env"]
    if "cert" not in settings and (bundle := ssl.get_default_verify_paths().cafile):
        settings["cert"] = bundle
    return settings


def local_directory(key: str, location: str) -> Path | None:
    """The directory a find-links or index entry reads from, if it is on this machine.

    A local index's pages link to their files relative to the index (`../../files/...`), so an
    index is mounted from its parent directory.
    """
    if location.startswith("file://"):
        path = Path(urlparse(location).path)
    elif "://" in location:
        return None
    else:
        path = Path(location)
    if not path.is_dir():
        return None
    return path if key == "find-links" else path.parent


def offers_cpu_torch(directories: list[Path]) -> bool:
    return any(next(directory.glob("torch-*+cpu-*.whl"), None) for directory in directories)


def main(out: Path, mount_point: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    settings = host_settings()
    conf = configparser.ConfigParser()
    conf["global"] = {}
    local_dirs: list[Path] = []
    for key, value in settings.items():
        if key in PLAIN_KEYS:
            conf["global"][key] = value
        elif key in FILE_KEYS and Path(value).is_file():
            shutil.copyfile(value, out / FILE_KEYS[key])
            conf["global"][key] = f"{mount_point}/{FILE_KEYS[key]}"
        elif key in LOCATION_KEYS:
            locations = value.split()
            local_dirs += [d for loc in locations if (d := local_directory(key, loc)) is not None]
            conf["global"][key] = " ".join(locations)
    with (out / "pip.conf").open("w") as handle:
        conf.write(handle)
    build_args = [f"PIP_CONFIG_FILE={mount_point}/pip.conf"]
    if offers_cpu_torch(local_dirs):
        # The host's own CPU torch wheel stands in for PyTorch's CPU index, which it may not reach.
        build_args.append("TORCH_INDEX_URL=")
    (out / "build-args").write_text("".join(f"{arg}\n" for arg in build_args))
    mounts = [f"{out}:{mount_point}:ro", *(f"{d}:{d}:ro" for d in dict.fromkeys(local_dirs))]
    (out / "mounts").write_text("".join(f"{mount}\n" for mount in mounts))
    print("\n".join(mounts))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve(), sys.argv[2])
