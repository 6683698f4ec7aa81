"""examples/quickstart.ipynb runs top to bottom in a real Jupyter kernel and shows its figures."""

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

NOTEBOOK = REPO / "examples" / "quickstart.ipynb"


def test_notebook_is_committed_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_runs_and_shows_figures_and_tables(tmp_path, monkeypatch):
    for name, value in {"SEGMENT_NUM_SYNTHETIC": "20", "SEGMENT_IMAGE_SIZE": "32",
                        "SEGMENT_BASE_FILTERS": "4", "SEGMENT_DEPTH": "2",
                        "SEGMENT_EPOCHS": "1", "SEGMENT_RUN_DIR": str(tmp_path / "run")}.items():
        monkeypatch.setenv(name, value)  # read by the notebook's first cell
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    def images(cell):
        return [output for output in cell.outputs if "image/png" in output.get("data", {})]

    figure_cells = [cell for cell in notebook.cells if cell.cell_type == "code"
                    and (cell.source.startswith("report.figures[")
                         or "show_prediction" in cell.source or "sizes.figure" in cell.source
                         or cell.source.startswith("show_worst("))]
    assert len(figure_cells) == 8
    for cell in figure_cells:
        assert len(images(cell)) == 1, cell.source  # shown inline, and only once
    html = [output["data"]["text/html"] for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.outputs if "text/html" in output.get("data", {})]
    assert any("ISIC score" in page and "<table" in page for page in html)  # the report
    assert any("tta + postprocess" in page for page in html)  # the comparison table
    assert any(page.count("data:image/jpeg;base64,") == 4 for page in html)  # 4 test images
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      if cell.cell_type == "code" for output in cell.outputs)
    assert "image by image over 4 images: mean dice" in printed  # TTA against plain
    assert (tmp_path / "run" / "report.html").exists()
