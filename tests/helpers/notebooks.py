"""Running a notebook headless for the notebook tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbclient import NotebookClient


def run_notebook(notebook: Any, folder: Path, kernel_name: str) -> tuple[list[Any], str]:
    """Execute every cell of ``notebook`` (an nbformat notebook, changed in place) in a fresh
    ``kernel_name`` kernel working in ``folder``: every cell's outputs, and all the text the
    cells printed.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (it is named).
    """
    client = NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=60,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    return outputs, text
