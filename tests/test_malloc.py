"""The bowlrp command keeps freed memory for reuse (glibc's mallopt), and the library leaves the allocator alone."""

import platform
import subprocess
import sys
import textwrap

import pytest

from bowlrp._malloc import retain_freed_memory

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's mallopt only")

# allocate, touch and free 10 arrays of 8 MiB twice; print the minor page faults of the second round
_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "retain":
        from bowlrp._malloc import retain_freed_memory
        assert retain_freed_memory()
    elif sys.argv[1] == "import":
        import bowlrp  # importing the library must not change the allocator
    def round_():
        arrays = [np.ones(1 << 20) for _ in range(10)]
        del arrays
    round_()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    round_()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode):
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@glibc
def test_retained_memory_is_reused_without_page_faults():
    pages = 10 * (8 << 20) // 4096
    assert _faults("retain") < 0.01 * pages  # the second round reuses the first round's pages
    assert _faults("default") > 0.1 * pages  # glibc's defaults give them back (a quarter faulted: huge pages)
    assert _faults("import") > 0.1 * pages


def test_retain_freed_memory_reports_what_it_did():
    assert isinstance(retain_freed_memory(), bool)


def test_only_the_command_sets_the_allocator(monkeypatch, capsys):
    import bowlrp._malloc
    from bowlrp.cli import main

    calls = []
    monkeypatch.setattr(bowlrp._malloc, "retain_freed_memory", lambda: calls.append(1) or True)
    assert main(["reproduce", "--only", "toys"]) == 2  # called from Python with arguments: left alone
    assert calls == []
    monkeypatch.setattr(sys, "argv", ["bowlrp", "reproduce", "--only", "toys"])
    assert main() == 2  # the command line
    assert calls == [1]
    capsys.readouterr()
