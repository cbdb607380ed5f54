"""Inspecting saved models: text and JSON summaries, learning-curve plots, bad files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lstm_tutorial import inspect as model_inspect
from lstm_tutorial.fileio import DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_original_layout(path, history_errs, *, with_errors=True, dtype="float32"):
    """Write an npz as the original tutorial saved it: parameters, history_errs, errors."""
    rng = np.random.default_rng(0)
    dim, n_words, ydim = 4, 12, 2
    params = {
        "Wemb": rng.random((n_words, dim)), "lstm_W": rng.standard_normal((dim, 4 * dim)),
        "lstm_U": rng.standard_normal((dim, 4 * dim)), "lstm_b": np.zeros(4 * dim),
        "U": rng.standard_normal((dim, ydim)), "b": np.zeros(ydim),
    }
    arrays = {name: value.astype(dtype) for name, value in params.items()}
    arrays["history_errs"] = np.asarray(history_errs)
    if with_errors:
        arrays.update(train_err=0.1, valid_err=0.2, test_err=0.3)
    np.savez(path, **arrays)
    return path


def run_main(capsys, *argv):
    status = model_inspect.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_summary_of_trained_model(tiny_reviews_model):
    summary = model_inspect.summarize_model(tiny_reviews_model)
    with np.load(tiny_reviews_model) as arrays:
        history_errs = arrays["history_errs"]
        history_updates = arrays["history_updates"]
        errors = {name: float(arrays[name]) for name in ("train_err", "valid_err", "test_err")}
        shapes = {name: list(arrays[name].shape) for name in ("Wemb", "lstm_W", "U")}

    assert summary["layout"] == "lstm_tutorial"
    assert summary["options"]["dim_proj"] == 8
    assert summary["options"]["validFreq"] == 35
    assert summary["errors"] == errors
    assert summary["n_validations"] == len(history_errs) > 0
    assert summary["updates_source"] == "recorded"
    assert [row["update"] for row in summary["history"]] == history_updates.tolist()
    assert [[row["valid_err"], row["test_err"]] for row in summary["history"]] == \
        history_errs.tolist()
    best_index = np.flatnonzero(history_errs[:, 0] == history_errs[:, 0].min())[-1]
    assert summary["best_validation"]["validation"] == best_index + 1
    assert summary["params"]["Wemb"] == {"shape": shapes["Wemb"], "dtype": "float32"}
    assert summary["params"]["lstm_W"]["shape"] == shapes["lstm_W"] == [8, 32]
    assert summary["params"]["U"]["shape"] == shapes["U"] == [8, 2]
    assert summary["n_params"] == 30 * 8 + 2 * 8 * 32 + 32 + 8 * 2 + 2


def test_text_output_lists_everything(tiny_reviews_model, capsys):
    status, out, _ = run_main(capsys, tiny_reviews_model)
    summary = model_inspect.summarize_model(tiny_reviews_model)

    assert status == 0
    assert "options:" in out
    assert "  dim_proj" in out
    assert f"test_err={summary['errors']['test_err']:.4f}" in out
    assert f"validations: {summary['n_validations']}" in out
    table = out.split("history_errs:\n", 1)[1].split("parameters:", 1)[0].splitlines()
    assert len(table) == 1 + summary["n_validations"]
    assert sum(line.endswith("best") for line in table) == 1
    assert "lstm_U  8 x 32" in out
    assert "float32" in out


def test_json_output_round_trips(tiny_reviews_model, capsys):
    status, out, _ = run_main(capsys, tiny_reviews_model, "--json")

    assert status == 0
    assert json.loads(out) == json.loads(json.dumps(
        model_inspect.summarize_model(tiny_reviews_model)))


def test_original_layout_without_options(tmp_path, capsys):
    path = write_original_layout(tmp_path / "original.npz",
                                 [[0.5, 0.6], [0.3, 0.4], [0.3, 0.35], [0.4, 0.4]])
    summary = model_inspect.summarize_model(path)

    assert summary["layout"] == "original"
    assert summary["options"] is None
    assert summary["errors"] == {"train_err": 0.1, "valid_err": 0.2, "test_err": 0.3}
    assert summary["updates_source"] == "unknown"
    assert [row["update"] for row in summary["history"]] == [None] * 4
    # Ties go to the later validation, the one training keeps as the best.
    assert summary["best_validation"]["validation"] == 3
    status, out, _ = run_main(capsys, path)
    assert status == 0
    assert "no options stored" in out
    assert "updates: unknown" in out


def test_original_layout_updates_from_validfreq(tmp_path):
    path = write_original_layout(tmp_path / "original.npz", [[0.5, 0.6], [0.3, 0.4]])
    summary = model_inspect.summarize_model(path, valid_freq=370)

    assert summary["updates_source"] == "validFreq"
    assert [row["update"] for row in summary["history"]] == [370, 740]


def test_model_saved_before_any_validation(tmp_path, capsys):
    path = write_original_layout(tmp_path / "early.npz", [], with_errors=False)
    status, out, _ = run_main(capsys, path)
    summary = model_inspect.summarize_model(path)

    assert status == 0
    assert summary["n_validations"] == 0
    assert summary["best_validation"] is None
    assert summary["errors"] is None
    assert "not stored" in out


@pytest.mark.parametrize("content", [b"this is not a model\n", b"PK\x03\x04 broken zip"])
def test_non_model_file_reported(tmp_path, capsys, content):
    path = tmp_path / "notes.npz"
    path.write_bytes(content)
    status, out, err = run_main(capsys, path)

    assert status == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "notes.npz" in err


def test_npz_without_parameters_reported(tmp_path, capsys):
    path = tmp_path / "arrays.npz"
    np.savez(path, weights=np.zeros(3))
    status, _, err = run_main(capsys, path)

    assert status == 1
    assert "arrays.npz" in err
    assert "is not an LSTM model" in err
    assert "Wemb" in err
    with pytest.raises(DataError, match="history_errs"):
        model_inspect.summarize_model(path)


def test_missing_file_reported(tmp_path, capsys):
    status, _, err = run_main(capsys, tmp_path / "absent.npz")

    assert status == 1
    assert "absent.npz" in err
    assert "not found" in err


def test_plot_png_is_an_image(tiny_reviews_model, tmp_path, capsys):
    output = tmp_path / "plots" / "curves.png"
    status, out, _ = run_main(capsys, tiny_reviews_model, "--plot", output)

    assert status == 0
    data = output.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000
    assert f"plot written to {output}" in out


@pytest.mark.parametrize("suffix, start", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_svg_and_pdf(tmp_path, suffix, start):
    path = write_original_layout(tmp_path / "original.npz", [[0.5, 0.6], [0.3, 0.4]])
    output = model_inspect.plot_history(model_inspect.summarize_model(path),
                                        tmp_path / f"curves{suffix}")

    assert output.read_bytes().startswith(start)


def test_plot_rejects_unknown_suffix(tiny_reviews_model, tmp_path, capsys):
    status, _, err = run_main(capsys, tiny_reviews_model, "--plot", tmp_path / "curves.gif")

    assert status == 1
    assert ".png, .svg, .pdf" in err


def test_plot_without_validations_rejected(tmp_path):
    path = write_original_layout(tmp_path / "early.npz", [])
    with pytest.raises(ValueError, match="no validations"):
        model_inspect.plot_history(model_inspect.summarize_model(path), tmp_path / "c.png")


def test_plot_without_matplotlib_says_how_to_install(tiny_reviews_model, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    status, _, err = run_main(capsys, tiny_reviews_model, "--plot", tmp_path / "c.png")

    assert status == 1
    assert "pip install 'lstm-tutorial[plot]'" in err
    assert not (tmp_path / "c.png").exists()


def test_module_keeps_stdlib_inspect_importable():
    import inspect as stdlib_inspect

    from lstm_tutorial import cli

    assert cli.inspect is stdlib_inspect
    assert hasattr(stdlib_inspect, "signature")
    assert model_inspect.__name__ == "lstm_tutorial.inspect"


def test_command_line_as_a_user(tiny_reviews_model, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "lstm_tutorial.inspect", str(tiny_reviews_model), "--plot",
         str(tmp_path / "curves.png")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)

    assert completed.returncode == 0, completed.stderr
    assert "history_errs:" in completed.stdout
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC
