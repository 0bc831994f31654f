"""Issue #13.11: hostile names and text.

* labels that read as a missing value (``NaN``, ``nan``, ``None``, blank) or carry bidi /
  invisible characters are refused by the importers, by ``Dataset.write`` and by concept naming;
* user text (rationales, concept and class names, actor names) is rendered as text in the UI,
  never as Markdown (no links, no images that the browser would fetch).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from concepts import ConceptError, DataError, Dataset
from concepts.bank import Concept, ExampleSet
from concepts.data import DatasetInfo, check_name, name_problem
from concepts.importers import import_class_folders, import_folder
from workbench.ui._text import md

HOSTILE_NAMES = [
    "NaN", "nan", "NAN", "None", "null", "NA", "<NA>", "#N/A", "", " ", "\t",
    "mela\u202enoma",          # RIGHT-TO-LEFT OVERRIDE: displays as "melaamon"
    "\u2067nevus\u2069",        # RIGHT-TO-LEFT ISOLATE ... POP DIRECTIONAL ISOLATE
    "nev\u200bus",              # ZERO WIDTH SPACE: looks like "nevus"
    "nevus\u200d",              # ZERO WIDTH JOINER
    "\ufeffmelanoma",           # BOM
    "mel\u00a0anoma",           # NO-BREAK SPACE
    "mel\x00anoma", "mel\x1banoma", "mel\nanoma", "mel\u2028anoma",
    " melanoma", "melanoma ",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_refused(name: str) -> None:
    assert name_problem(name)
    with pytest.raises(DataError):
        check_name(name, "class name")


@pytest.mark.parametrize("name", ["melanoma", "non_melanoma", "Nävus", "黒色腫", "basal cell carcinoma",
                                  "seborrheic-keratosis", "MEL", "nana", "nano"])
def test_ordinary_names_accepted(name: str) -> None:
    assert name_problem(name) == ""


def _images(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / f"c{i}.png")


@pytest.mark.parametrize("label", ["NaN", "nan", "None", "mela\u202enoma", "nev\u200bus"])
def test_csv_import_refuses_hostile_label(tmp_path: Path, label: str) -> None:
    data = tmp_path / "data"
    _images(data, 4)
    rows = ["case_id,path,label"] + [f"c{i},c{i}.png,{'nevus' if i else label}" for i in range(4)]
    (data / "cases.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "ws" / "datasets" / "x"
    with pytest.raises(DataError, match=r"line 2, column 'label'") as info:
        import_folder(data / "cases.csv", out, image_size=8)
    assert "\n" not in str(info.value)
    assert not out.exists()
    with pytest.raises(DataError, match="class name"):
        import_folder(data / "cases.csv", out, image_size=8, classes=[label, "nevus"])


@pytest.mark.parametrize("folder", ["nan", "NaN", "mel\u202eanoma"])
def test_class_folder_import_refuses_hostile_folder(tmp_path: Path, folder: str) -> None:
    _images(tmp_path / "imgs" / folder, 2)
    _images(tmp_path / "imgs" / "nevus", 2)
    out = tmp_path / "ws" / "datasets" / "x"
    with pytest.raises(DataError, match="class folder"):
        import_class_folders(tmp_path / "imgs", out, image_size=8)
    assert not out.exists()


def test_dataset_write_refuses_hostile_names(tmp_path: Path) -> None:
    """The backstop for every importer and generator."""
    cases = pd.DataFrame({"case_id": ["a", "b"], "label": ["nan", "nevus"], "split": ["train", "test"],
                          "in\u200bk": [0, 1]})
    imgs = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(DataError, match="class name 'nan'"):
        Dataset.write(tmp_path / "a", DatasetInfo("a", "t", ("nan", "nevus"), 8), cases, imgs)
    cases["label"] = ["mel", "nevus"]
    with pytest.raises(DataError, match="artifact name"):
        Dataset.write(tmp_path / "b", DatasetInfo("b", "t", ("mel", "nevus"), 8, artifacts=("in\u200bk",)),
                      cases, imgs)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", ["nan", "in\u202ek", "ink\u200b", " ink"])
def test_concept_naming_refuses_hostile_names(name: str) -> None:
    ex = ExampleSet("array", "k", 3, "", "", ())
    with pytest.raises(ConceptError, match="invalid concept name"):
        Concept(name, "custom", "", ex)


# ---------------------------------------------------------------------------- rendering
BEACON = "![x](https://evil.example/beacon.png?who=derm) [log in again](https://evil.example/login)"


@pytest.mark.parametrize(
    "text",
    [BEACON, "<img src=https://evil.example/b.png>", "https://evil.example/login", "www.evil.example",
     "mail me: a@evil.example", ":red[ALERT] :material/warning:", "$\\href{https://evil.example}{x}$",
     "**bold** _it_ `code` # heading\n- list", "[x]: https://evil.example\n[x]"],
)
def test_md_escapes_every_markdown_construct(text: str) -> None:
    out = md(text)
    # every ASCII punctuation character is backslash-escaped: nothing can open a construct
    assert not re.search(r"(?<!\\)[!\[\]()<>:*_`#$@.\-]", out.replace("\\\\", "")), out
    assert "\n" not in out
    assert re.sub(r"\\(.)", r"\1", out) == " ".join(text.split())  # displays what was typed


def test_rationale_shown_as_text_in_the_ui(ui_env: pytest.MonkeyPatch, fresh_workspace: Path) -> None:
    """A rationale with an image beacon and a phishing link, and a concept name with Markdown,
    appear as text on the Overview page (AppTest), never as Markdown."""
    from streamlit.testing.v1 import AppTest

    from store import Actor, Role, Store
    from tests.support.ui import APP
    from workbench.auth._config import ENV_ROLE, ENV_WORKSPACE

    s = Store.for_workspace(fresh_workspace)
    derm = Actor.from_os_user(Role.DERMATOLOGIST)
    iv = s.append_event(derm, "proposed", spec={"concept": "ink", "op": "mask"}, rationale=BEACON,
                        concept="[ink](https://evil.example)")
    s.append_event(derm, "applied", intervention_id=iv.intervention_id, rationale=BEACON,
                   concept="[ink](https://evil.example)")
    ui_env.setenv(ENV_WORKSPACE, str(fresh_workspace))
    ui_env.setenv(ENV_ROLE, "dermatologist")  # lands on the Overview
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception
    texts = [t.value for t in at.text]
    assert any(BEACON in t for t in texts), texts
    rendered = [m.value for m in (*at.markdown, *at.caption, *at.info, *at.error, *at.warning)]
    assert not any("](https://evil" in m for m in rendered), rendered
    assert any(r"\[ink\]\(https\:" in m for m in rendered)  # the concept name, escaped


def test_html_report_does_not_show_the_server_path(tmp_path: Path) -> None:
    from store import Actor, Role, Store

    s = Store(tmp_path / "secret-dir" / "store.duckdb")
    derm = Actor.from_os_user(Role.DERMATOLOGIST)
    iv = s.append_event(derm, "proposed", spec={"concept": "ink", "op": "mask"}, rationale="r")
    html = s.report_html(str(iv.intervention_id))
    # the header names the workspace folder (what an auditor files it under), never a path
    assert str(tmp_path) not in html and str(s.path) not in html
    assert "Concept Workbench · secret-dir" in html
