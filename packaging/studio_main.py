"""Entry point of the PyInstaller bundle: the same ``studio`` command as the installed console script.

``freeze_support`` first: the Dataset pane's token counter starts a spawn-mode worker process, and a
frozen app re-executes itself to run it; without this call that child would open a second window.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from studio.cli import main

    sys.exit(main())
