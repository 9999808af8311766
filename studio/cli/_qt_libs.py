"""The system libraries Qt's X11 window plugin needs, found without importing Qt.

When one is missing, Qt aborts the process with a message about the platform plugin that names a
library that *is* installed, so both ``./bootstrap.sh run`` and ``studio gui`` ask here first and print
the one ``apt-get install`` line instead. ``python -m studio.cli._qt_libs`` prints the Debian packages
to install (nothing when all is well); bootstrap.sh uses it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

# What Qt's xcb plugin links against beyond a desktop's usual X11 stack (Qt's own list, Debian names).
XCB_PACKAGES = (
    "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0", "libxcb-xkb1",
    "libxcb-shape0", "libxcb-randr0", "libxcb-xinerama0", "libxkbcommon-x11-0", "libegl1", "libgl1",
)
# Sonames whose Debian package name does not follow lib<name><version>.
_KNOWN = {
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libOpenGL.so.0": "libopengl0", "libGLX.so.0": "libglx0",
    "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6", "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
    "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
}


def xcb_plugin() -> Path | None:
    """Qt's X11 platform plugin inside the installed PySide6, or None (not Linux, or not installed)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return None
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """Sonames the dynamic loader cannot find for ``plugin`` (its whole dependency tree)."""
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []  # no ldd: let Qt speak for itself
    found = re.findall(r"^\s*(\S+)\s*=>\s*not found", out, flags=re.MULTILINE)
    return list(dict.fromkeys(found))


def debian_package(soname: str) -> str:
    """``libxcb-icccm.so.4`` -> ``libxcb-icccm4``; ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``."""
    if soname in _KNOWN:
        return _KNOWN[soname]
    m = re.match(r"^(lib.+?)\.so\.(\d+)", soname)
    if not m:
        return soname
    name, version = m.group(1).lower(), m.group(2)
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def packages_to_install(missing: list[str]) -> list[str]:
    """The whole known list plus whatever else is missing: one install, not one per relaunch."""
    if not missing:
        return []
    return list(dict.fromkeys([*XCB_PACKAGES, *(debian_package(s) for s in missing)]))


def uses_xcb() -> bool:
    """Whether Qt will try the X11 plugin: Linux, and no other platform chosen."""
    if not sys.platform.startswith("linux"):
        return False
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not platform:  # Qt 6 prefers Wayland when a Wayland session is there
        return not os.environ.get("WAYLAND_DISPLAY")
    return platform.startswith("xcb")


def window_problem() -> str | None:
    """Why Qt cannot open a window here, as the message to print, or None when it should work."""
    if not uses_xcb():
        return None
    plugin = xcb_plugin()
    if plugin is not None:
        missing = missing_libraries(plugin)
        if missing:
            return ("The studio cannot open a window: Qt needs system libraries that are missing "
                    f"({', '.join(missing)}). Install them with:\n"
                    f"  sudo apt-get install {' '.join(packages_to_install(missing))}")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        return ("The studio cannot open a window: no display (DISPLAY is not set). Start it from a desktop "
                "session, or on a headless machine under a virtual display: xvfb-run studio gui")
    return None


if __name__ == "__main__":
    plugin = xcb_plugin()
    print(" ".join(packages_to_install(missing_libraries(plugin) if plugin else [])))
