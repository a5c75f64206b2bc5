"""Progress: a bar per slide whose total follows the zooming, log lines where no terminal is."""

from __future__ import annotations

import io

from test_batch import segment, slides

from razn.engine.progress import (
    BarProgress,
    LogProgress,
    NoProgress,
    estimated_nodes,
    progress_mode,
    slide_progress,
)


def test_the_estimate_assumes_half_the_nodes_zoom_until_a_level_tells():
    assert estimated_nodes(10, 0, 3, 2, 0.5) == 10 + 20 + 40
    assert estimated_nodes(10, 2, 3, 2, 0.5) == 10  # the finest level: nothing below
    assert estimated_nodes(10, 0, 3, 2, 0.0) == 10


def test_the_bar_total_is_corrected_as_levels_finish():
    bar = BarProgress("slide", num_levels=3, rate=2, stream=io.StringIO())
    bar.level_started(0, 10)
    assert bar.bar.total == 70
    bar.advance(8, 3)  # two of the ten were empty: counted when the level ends
    bar.level_finished(0, 10, zoomed=1, patches=3)
    assert bar.bar.n == 10
    bar.level_started(1, 4)  # one zoom: 4 children, not the 20 assumed
    assert bar.bar.total == 10 + 4 + 8
    bar.advance(4, 2)
    bar.level_finished(1, 4, zoomed=2, patches=2)
    bar.level_started(2, 8)
    assert bar.bar.total == 22
    bar.advance(8, 8)
    bar.level_finished(2, 8, zoomed=0, patches=8)
    assert bar.bar.n == bar.bar.total == 22
    bar.close()


def test_modes_follow_the_terminal_and_quiet():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_mode(False, Terminal()) == "bar"
    assert progress_mode(False, io.StringIO()) == "log"
    assert progress_mode(True, Terminal()) == "quiet"
    assert isinstance(slide_progress("s", "quiet", 3, 2), NoProgress)
    assert isinstance(slide_progress("s", "log", 3, 2), LogProgress)


def test_without_a_terminal_segment_logs_one_line_per_level(tiny_run, tmp_path):
    from click.testing import CliRunner

    from razn.cli import main

    slide = slides(tiny_run)[0]
    args = ["segment", str(slide), "--run", str(tiny_run / "run"), "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--mode", "cip"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(f"{slide.name}: level")]
    assert len(lines) == 3 and lines[-1].startswith(f"{slide.name}: level 2: ")
    assert " 0 zoomed, " in lines[-1] and "patches segmented in" in lines[-1]
    quiet = segment(tiny_run, tmp_path / "quiet", str(slide), mode="cip")
    assert quiet.exit_code == 0 and ": level" not in quiet.output


def test_long_steps_report_a_start_and_an_end_line_in_logs(capsys):
    from razn.engine.progress import tracked

    assert list(tracked([1, 2, 3], "reward cache of a.svs", "log", unit="root")) == [1, 2, 3]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "reward cache of a.svs: 3 roots …"
    assert lines[1].startswith("reward cache of a.svs: done in ")
    assert list(tracked([1], "quiet step", "quiet")) == [1]
    assert capsys.readouterr().err == ""


def test_the_training_log_stamps_every_stage_and_names_the_dice(tiny_run):
    import re

    lines = (tiny_run / "train.log").read_text(encoding="utf-8").splitlines()
    stamped = [line for line in lines if re.match(r"\[\d\d:\d\d:\d\d \+\s*\d+ s\] ", line)]
    stages = [re.sub(r"^\[[^]]*\] ", "", line) for line in stamped]
    assert stages[0] == "checking the dataset"
    assert stages[1].startswith("run: ") and "training the segmenters of 3 levels" in stages[1]
    dice = [s for s in stages if s.startswith("segmenter of level")]
    assert len(dice) == 3 and re.search(
        r"validation Dice background \d\.\d{3}, tumour \d\.\d{3}; mean \d\.\d{3}$", dice[0]
    )
    assert any(s.startswith("training the zoom policies (λ = 0.01") for s in stages)
    assert sum(s.startswith("zoom policy of level") for s in stages) == 2
    assert stages[-1].startswith("trained: ")
