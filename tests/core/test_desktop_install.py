"""Desktop integration: the packaged entry and metainfo pass the freedesktop validators, and
``studio install-desktop`` puts a working launcher for *this* installation in a user's menu."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import main as cli_main
from studio.core import desktop_install as desktop

needs_desktop_file_validate = pytest.mark.skipif(
    shutil.which("desktop-file-validate") is None,
    reason="desktop-file-validate is not installed (Debian/Ubuntu: apt-get install desktop-file-utils)",
)
needs_appstreamcli = pytest.mark.skipif(
    shutil.which("appstreamcli") is None, reason="appstreamcli is not installed (Debian/Ubuntu: apt-get install appstream)"
)


def _validate_entry(path: Path) -> None:
    done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if "error:" in line or "warning:" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def xdg(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "xdg data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@needs_desktop_file_validate
def test_packaged_desktop_entry_is_valid():
    _validate_entry(desktop.packaging_dir() / desktop.DESKTOP_NAME)


@needs_appstreamcli
def test_packaged_metainfo_is_valid():
    path = desktop.packaging_dir() / desktop.METAINFO_NAME
    done = subprocess.run(["appstreamcli", "validate", "--no-net", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"<launchable type=\"desktop-id\">{desktop.DESKTOP_NAME}</launchable>" in path.read_text()


def test_icon_has_svg_and_every_png_size():
    files = desktop.app_icon_files()
    assert files[0].suffix == ".svg"
    sizes = [_png_size(p) for p in files[1:]]
    assert sizes == [(n, n) for n in (16, 24, 32, 48, 64, 128, 256, 512)]
    for png in files[1:]:
        n = int(png.parts[-3].split("x")[0])
        assert _png_size(png) == (n, n), png


def test_install_points_exec_at_this_installation(xdg, capsys):
    assert cli_main(["install-desktop"]) == 0
    entry = xdg / "applications" / desktop.DESKTOP_NAME
    text = entry.read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    studio = Path(sys.executable).parent / "studio"
    assert studio.is_file(), "the test environment installs the studio console script beside its python"
    assert exec_line == f"Exec={studio.absolute()} gui"
    assert f"TryExec={studio.absolute()}" in text
    assert f"Icon={desktop.APP_ID}" in text
    for n in (16, 32, 48, 256, 512):
        assert _png_size(xdg / "icons" / "hicolor" / f"{n}x{n}" / "apps" / f"{desktop.APP_ID}.png") == (n, n)
    assert (xdg / "icons" / "hicolor" / "scalable" / "apps" / f"{desktop.APP_ID}.svg").is_file()
    assert (xdg / "metainfo" / desktop.METAINFO_NAME).is_file()
    assert str(entry) in capsys.readouterr().out
    if shutil.which("desktop-file-validate"):
        _validate_entry(entry)


def test_installed_exec_starts_the_studio(xdg):
    """What the menu runs is a working command: the Exec argv (without 'gui') answers --help."""
    desktop.install()
    exec_line = next(line for line in (xdg / "applications" / desktop.DESKTOP_NAME).read_text().splitlines()
                     if line.startswith("Exec="))
    argv = exec_line.removeprefix("Exec=").split(" ")
    assert argv[-1] == "gui"
    done = subprocess.run([*argv[:-1], "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "install-desktop" in done.stdout


def test_uninstall_removes_only_what_install_wrote(xdg):
    written = desktop.install()
    other = xdg / "applications" / "someone-else.desktop"
    other.write_text("[Desktop Entry]\n")
    assert cli_main(["install-desktop", "--uninstall"]) == 0
    assert not any(p.exists() for p in written)
    assert other.read_text() == "[Desktop Entry]\n"
    assert desktop.uninstall() == []  # a second uninstall finds nothing and says so without failing


def test_reinstall_replaces_the_entry(xdg):
    desktop.install(argv=["/old/place/studio"])
    desktop.install(argv=["/new/place/studio"])
    text = (xdg / "applications" / desktop.DESKTOP_NAME).read_text()
    assert "Exec=/new/place/studio gui" in text and "/old/" not in text


def test_exec_quotes_paths_the_spec_reserves(xdg):
    argv = ["/opt/my apps/studio's $HOME/bin\\x/100%/studio"]
    desktop.install(argv=argv)
    entry = xdg / "applications" / desktop.DESKTOP_NAME
    exec_line = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))
    # quoted, ", `, $ and \ escaped inside the quotes, % doubled, then \ escaped again for the string type
    assert exec_line == 'Exec="/opt/my apps/studio\'s \\\\$HOME/bin\\\\\\\\x/100%%/studio" gui'
    if shutil.which("desktop-file-validate"):
        _validate_entry(entry)


def test_relative_xdg_data_home_is_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    assert desktop.xdg_data_home() == tmp_path / ".local" / "share"


def test_unwritable_data_home_is_a_message(xdg):
    xdg.mkdir()
    (xdg / "applications").write_text("a file where a folder belongs")
    with pytest.raises(desktop.StudioError, match="Could not write the desktop entry"):
        desktop.install()


def test_bundle_script_names_files_that_exist():
    """build.sh is not run by the suite (minutes, 1.4 GB); this catches a renamed file it packs."""
    import re

    script = desktop.packaging_dir() / "build.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    packed = re.findall(r'--add-data "\$ROOT/([^:"]+):', text)
    assert packed, "build.sh packs the icons, demo data and desktop files"
    root = desktop.packaging_dir().parent
    assert [p for p in packed if not (root / p).exists()] == []
    assert (root / "packaging" / "studio_main.py").is_file() and "--recursive-copy-metadata" in text
