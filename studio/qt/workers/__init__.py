"""Workers: Qt-free core functions run on QThreads, reporting back through signals."""
