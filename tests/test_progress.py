"""Progress output: live bars for a person, one summary line per kept loop for batch runs, nothing when off."""

import pytest

from nablatau.errors import ConfigError
from nablatau.progress import SummaryLine, progress_bar, progress_style


def test_lines_style_prints_one_summary_line_per_kept_loop(monkeypatch, capsys):
    monkeypatch.setenv("NABLATAU_PROGRESS", "lines")
    bar = progress_bar(range(3), desc="∇τ", unit="epoch")
    for _ in bar:
        bar.set_postfix({"alpha": "0.100"}, forget="1.234")
    inner = progress_bar(range(5), desc="Fisher importance", unit="batch", leave=False)
    assert list(inner) == [0, 1, 2, 3, 4]
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("∇τ: 3/3 epochs in ")
    assert lines[0].endswith("(alpha=0.100, forget=1.234)")


def test_resumed_loop_says_where_it_resumed(capsys):
    with SummaryLine(desc="train", unit="epoch", total=20, initial=5) as bar:
        bar.update(15)
    assert "train: 20/20 epochs in" in capsys.readouterr().out
    bar.close()  # a second close prints nothing
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("style", ["off", "lines", "bars"])
def test_disabled_progress_prints_nothing(monkeypatch, capsys, style):
    monkeypatch.setenv("NABLATAU_PROGRESS", style)
    assert list(progress_bar(range(2), desc="train", enabled=False)) == [0, 1]
    assert capsys.readouterr() == ("", "")


def test_style_follows_the_environment_variable_and_rejects_unknown_values(monkeypatch):
    monkeypatch.setenv("NABLATAU_PROGRESS", "bars")
    assert progress_style() == "bars"
    monkeypatch.setenv("NABLATAU_PROGRESS", "fancy")
    with pytest.raises(ConfigError, match="NABLATAU_PROGRESS must be one of"):
        progress_style()


def test_output_to_a_file_gets_lines_not_bars(monkeypatch):
    monkeypatch.delenv("NABLATAU_PROGRESS", raising=False)
    # pytest captures stderr, so it is not a terminal here, as in a log file
    assert progress_style() == "lines"


@pytest.mark.parametrize("parent, style", [("papermill", "lines"), ("pytest", "lines"), ("jupyter-lab", "bars")])
def test_a_kernel_started_by_a_batch_executor_gets_lines(monkeypatch, parent, style):
    import subprocess
    import time

    import nablatau.progress as progress

    monkeypatch.delenv("NABLATAU_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "_in_kernel", lambda: True)
    # A stand-in parent process whose command line names the program that started the kernel.
    stand_in = subprocess.Popen(["bash", "-c", f"exec -a {parent} sleep 30"])
    try:
        for _ in range(50):  # until exec has replaced bash's command line
            if parent in open(f"/proc/{stand_in.pid}/cmdline").read():
                break
            time.sleep(0.02)
        monkeypatch.setattr(progress.os, "getppid", lambda: stand_in.pid)
        assert progress.progress_style() == style
    finally:
        stand_in.kill()
