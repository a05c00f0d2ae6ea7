"""JupyterLab in a real browser: the chapters open, and the decoding chapter's sliders work
the way a reader uses them (Run All, then the mouse and the keyboard).

The suite starts its own JupyterLab (a free port, a token, no browser of its own, in a
temporary folder holding copies of the notebooks) and drives it with Playwright and
headless Chromium. Playwright cannot download a browser on these machines: it is pointed
at the system's Chromium (``$LLMREC_CHROMIUM``, else ``/usr/bin/chromium``; ``make test``
installs Debian's ``chromium`` when it is missing). The decoding chapter runs on the tiny
random model here (seconds) and, marked ``slow``, once on SmolLM2-135M, whose run also
takes the README's screenshot when ``$LLMREC_SCREENSHOT`` names a file.

Every check prints what it saw (run with ``-s`` to read it): times, the generation number
and settings shown, the titles in the record picker.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook
from playwright.sync_api import sync_playwright

from llmrec.data import assets
from llmrec.data.records import build_records
from llmrec.llm.models import load_model
from llmrec.llm.prompts import title_map
from llmrec.llm.train import config_for, default_out_dir, make_lora_model
from llmrec.paths import repo_root

NOTEBOOKS = repo_root() / "notebooks"
CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
#: Chromium flags: headless, and without the background traffic a closed network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}
CONTROLS = ["model", "record-id", "temperature", "top-p", "top-k", "num-beams",
            "repetition-penalty"]
LABELS = {"model": "model", "record-id": "record", "temperature": "temperature", "top-p": "top-p",
          "top-k": "top-k (0 = off)", "num-beams": "beams", "repetition-penalty": "repetition penalty"}


def chromium_path() -> str:
    """The Chromium to drive; one clear line when there is none."""
    for candidate in (os.environ.get("LLMREC_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no Chromium for the browser tests: `make test` installs Debian's chromium "
                "(apt-get install chromium); elsewhere set LLMREC_CHROMIUM=/path/to/chromium",
                pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server of this test module: started on a free port with a token and no
    browser, serving ``root``; stopped (its kernels with it) through its shutdown API."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        settings = root / ".lab" / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        # no news or update check toasts over the page (and no requests out)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root / ".lab" / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab" / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(root / ".lab" / "runtime"),
                   PYTHONPATH=os.pathsep.join([str(repo_root()), os.environ.get("PYTHONPATH", "")]))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = root / ".lab" / "server.log"
        start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT)
        while not self._up():
            if self.proc.poll() is not None or time.perf_counter() - start > 90:
                raise RuntimeError(f"JupyterLab did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        self.start_seconds = time.perf_counter() - start

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def _api(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(self.url(path), method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def _up(self) -> bool:
        try:
            self._api("api/status")
            return True
        except OSError:
            return False

    def stop_kernels(self) -> None:
        """Shut down every kernel the server runs (a test's notebooks are done with)."""
        for session in json.loads(self._api("api/sessions")):
            self._api(f"api/sessions/{session['id']}", method="DELETE")

    def stop(self) -> None:
        try:
            self._api("api/shutdown", method="POST")
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = JupyterLab(tmp_path_factory.mktemp("lab"))
    print(f"\nJupyterLab up in {server.start_seconds:.1f} s on port {server.port}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser_context():
    """Headless Chromium (the system's) and one context at 1366x768, shared by the module's
    pages so JupyterLab's scripts load from its cache after the first page."""
    path = chromium_path()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport=VIEWPORT)
        yield context
        context.close()
        chromium.close()


@pytest.fixture
def page(browser_context, lab):
    """A new page that records console errors and uncaught page errors; afterwards it is
    closed and the kernels it started are shut down."""
    page = browser_context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
    page.set_default_timeout(60_000)
    yield page
    page.close()
    lab.stop_kernels()


# ------------------------------------------------------------------------ helpers


def open_in_lab(page, lab: JupyterLab, path: str) -> None:
    """Open ``path`` (relative to the server's root) in a workspace of its own (nothing
    restored from an earlier page) and wait until its kernel is idle."""
    page.goto(lab.url(f"lab/workspaces/{secrets.token_hex(4)}/tree/{path}?token={lab.token}"))
    page.get_by_text("| Idle").wait_for(timeout=120_000)


def menu(page, top: str, item: str) -> None:
    page.get_by_role("menuitem", name=top, exact=True).click()
    page.get_by_role("menuitem", name=item, exact=True).click()


def save_and_read(page, path: Path) -> nbformat.NotebookNode:
    """Save the open notebook the way a reader does (Ctrl+S) and read the file back."""
    before = path.stat().st_mtime_ns
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.1)
    return nbformat.read(path, as_version=4)


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def decoding_notebook(root: Path, **params) -> Path:
    """Chapter 06 with ``params`` injected after its parameters cell (papermill's way)."""
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOKS / "06_decoding.ipynb")), params)
    path = root / f"06_decoding-{params['name']}.ipynb"
    nbformat.write(nb, path)
    return path


STATUS_LOG = """() => {
  window.llmrecStates = [];
  const el = document.querySelector('.llmrec-status');
  new MutationObserver(() => window.llmrecStates.push(el.innerText))
      .observe(el, {subtree: true, childList: true, characterData: true});
}"""


class Sliders:
    """The rendered sliders of chapter 06 in a page, read and moved like a reader would."""

    def __init__(self, page):
        self.page = page
        self.root = page.locator(".llmrec-sliders")

    def heading(self) -> str:
        return self.page.locator(".llmrec-result > b").first.inner_text()

    def generation(self) -> int:
        return int(self.heading().split(":")[0].split()[-1])

    def readout(self, control: str) -> str:
        return self.page.locator(f".llmrec-{control} .widget-readout").inner_text()

    def wait_ready(self, contains: str = "", timeout: float = 120) -> float:
        """Wait until a result whose heading holds ``contains`` is shown and the status says
        ready; return the seconds waited."""
        start = time.perf_counter()
        self.page.wait_for_function(
            """(want) => {
                const s = document.querySelector('.llmrec-status [data-state]');
                const h = document.querySelector('.llmrec-result > b');
                return s && s.dataset.state === 'ready' && h && h.innerText.includes(want);
            }""", arg=contains, timeout=timeout * 1000)
        return time.perf_counter() - start

    def watch_status(self) -> None:
        self.page.evaluate(STATUS_LOG)

    def states(self) -> list[str]:
        return self.page.evaluate("window.llmrecStates")

    def press(self, control: str, key: str, times: int = 1) -> None:
        handle = self.page.locator(f".llmrec-{control} .noUi-handle")
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(times):
            self.page.keyboard.press(key)

    def drag(self, control: str, fraction: float) -> None:
        """Drag the slider's handle with the mouse to ``fraction`` (0 to 1) of its track."""
        handle = self.page.locator(f".llmrec-{control} .noUi-handle")
        handle.scroll_into_view_if_needed()
        box = handle.bounding_box()
        track = self.page.locator(f".llmrec-{control} .noUi-base").bounding_box()
        x0, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        x1 = track["x"] + fraction * track["width"]
        self.page.mouse.move(x0, y)
        self.page.mouse.down()
        for i in range(1, 11):  # a drag, not a jump: ten moves along the track
            self.page.mouse.move(x0 + (x1 - x0) * i / 10, y)
            self.page.wait_for_timeout(40)
        self.page.mouse.up()

    def labels(self) -> dict[str, tuple[str, bool]]:
        """Per control, its label text and whether it shows whole (not cut off)."""
        return self.page.evaluate("""(names) => Object.fromEntries(names.map(n => {
            const l = document.querySelector('.llmrec-' + n + ' .widget-label');
            return [n, [l.innerText, l.scrollWidth <= l.clientWidth && l.offsetWidth > 0]];
        }))""", CONTROLS)

    def record_titles(self) -> tuple[list[str], list[str]]:
        liked = self.page.locator(".llmrec-record-view .llmrec-liked li").all_inner_texts()
        held = self.page.locator(".llmrec-record-view .llmrec-held-out li").all_inner_texts()
        return liked, held

    def selected_record(self) -> str:
        return self.page.locator(".llmrec-record-id select").evaluate("s => s.value").split(" ")[0]


def expected_titles(ml, record_id: str) -> tuple[list[str], list[str]]:
    records = build_records(ml.ratings).set_index("record_id")
    names = title_map(ml.movies)
    row = records.loc[record_id]
    return [names[i] for i in row["input_ids"]], [names[i] for i in row["target_ids"]]


def use_the_sliders(page, lab: JupyterLab, path: Path, ml, slow_model: bool) -> dict:
    """Open chapter 06, Run All, then use every control; assert along the way. Returns what
    was measured and seen."""
    seen: dict = {}
    open_in_lab(page, lab, path.name)
    menu(page, "Run", "Run All Cells")
    start = time.perf_counter()
    ui = Sliders(page)
    ui.root.wait_for(state="visible", timeout=300_000)
    seen["run_all_to_sliders_s"] = round(time.perf_counter() - start, 1)
    ui.wait_ready("generation 1:", timeout=300)
    seen["run_all_to_first_result_s"] = round(time.perf_counter() - start, 1)

    # every control it promises, with its whole label
    labels = ui.labels()
    assert {k: v[0] for k, v in labels.items()} == LABELS
    assert all(whole for _, whole in labels.values()), f"a label is cut off: {labels}"
    seen["first_heading"] = ui.heading()
    assert "temperature 0.70, top-p 0.90, top-k 50" in seen["first_heading"]

    # the record picker: six liked titles and four held-out ones, those of the record picked
    select = page.locator(".llmrec-record-id select")
    options = select.locator("option").all_inner_texts()
    for index in (0, min(1, len(options) - 1)):
        select.select_option(index=index)
        record_id = ui.selected_record()
        page.wait_for_function("(r) => document.querySelector('.llmrec-record-view').innerText"
                               ".includes('record ' + r)", arg=record_id)
        liked, held = ui.record_titles()
        assert (liked, held) == expected_titles(ml, record_id)
        assert len(liked) == 6 and len(held) == 4
        ui.wait_ready(f"record {record_id},")
    seen["record"] = {"id": record_id, "liked": liked, "held_out": held}

    # temperature from the keyboard: one press, one regeneration, busy shown meanwhile
    ui.watch_status()
    n = ui.generation()
    start = time.perf_counter()
    ui.press("temperature", "ArrowRight")
    if slow_model:  # a generation takes seconds: the busy line and the dimmed result show
        page.locator(".llmrec-status [data-state=busy]").wait_for(timeout=5_000)
        page.locator(".llmrec-result-view div[style*='opacity']").wait_for(timeout=5_000)
    ui.wait_ready("temperature 0.75,")
    seen["keyboard_regeneration_s"] = round(time.perf_counter() - start, 2)
    assert ui.generation() == n + 1
    assert any(s.startswith("\u231b generating") and "temperature 0.75" in s for s in ui.states())
    seen["after_keyboard"] = ui.heading()

    # three quick presses: the newest settings win; a slow generation is cancelled, not queued
    n = ui.generation()
    ui.press("temperature", "ArrowRight", times=3)
    ui.wait_ready("temperature 0.90,")
    done = ui.generation() - n
    assert 1 <= done <= 3 and (done == 1 or not slow_model)
    seen["generations_for_three_quick_presses"] = done

    # top-p with the mouse: a drag regenerates once, on release, with the value it shows
    n = ui.generation()
    start = time.perf_counter()
    ui.drag("top-p", 0.5)
    top_p = ui.readout("top-p")
    assert top_p != "0.90"
    ui.wait_ready(f"top-p {top_p},")
    seen["drag_regeneration_s"] = round(time.perf_counter() - start, 2)
    assert ui.generation() == n + 1, "a drag must regenerate once, on release"
    seen["after_drag"] = ui.heading()
    seen["completion"] = page.locator(".llmrec-completion").inner_text()
    seen["titles_table"] = page.locator(".llmrec-result").inner_text().split("\n")[-6:]
    seen["status"] = page.locator(".llmrec-status").inner_text()
    assert page.locator(".llmrec-error").count() == 0
    assert page.locator(".jp-OutputArea").get_by_text("Error displaying widget").count() == 0
    return seen


# -------------------------------------------------------------------------- tests


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_and_its_parameters_run(page, lab, chapter, filter_repo):
    """Each chapter opens in JupyterLab with a live kernel, every cell rendered, and its
    parameters cell and ``ch = Chapter.start(NN, globals())`` run without an error."""
    shutil.copy(chapter, lab.root / chapter.name)
    nb = nbformat.read(chapter, as_version=4)
    upto = next(i for i, c in enumerate(nb.cells) if "Chapter.start(" in c.source)
    open_in_lab(page, lab, chapter.name)
    page.get_by_text(f"Cell 1/{len(nb.cells)}", exact=True).wait_for()  # the status bar
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.first.locator(".jp-InputPrompt").click()
    for _ in range(upto + 1):
        page.keyboard.press("Shift+Enter")
    prompt = cells.nth(upto).locator(".jp-InputPrompt")
    page.wait_for_function("(el) => /\\[\\d+\\]/.test(el.innerText)", arg=prompt.element_handle())
    page.get_by_text("| Idle").wait_for()
    assert page.locator(".jp-Dialog").count() == 0
    # the notebook scrolls to its last cell, rendered (JupyterLab renders cells as they show)
    page.evaluate("() => { const o = document.querySelector('.jp-WindowedPanel-outer');"
                  " o.scrollTop = o.scrollHeight; }")
    last = page.locator(f'.jp-Cell[data-windowed-list-index="{len(nb.cells) - 1}"]')
    last.wait_for(state="visible")
    page.wait_for_function("(el) => el.innerText.trim().length > 0", arg=last.element_handle())
    saved = save_and_read(page, lab.root / chapter.name)
    assert error_outputs(saved) == []
    assert saved.cells[upto].execution_count is not None
    # what JupyterLab saved, staged through the set-up's git filter, is the committed source
    # (up to the kernel's display name, which is the local kernel's: `make setup` names it as
    # the sources do)
    stored_bytes = filter_repo.stage(lab.root / chapter.name)
    same_bytes = stored_bytes == chapter.read_bytes()
    stored, source = json.loads(stored_bytes), json.loads(chapter.read_text(encoding="utf-8"))
    for nb_json in (stored, source):
        nb_json["metadata"].get("kernelspec", {}).pop("display_name", None)
    assert stored == source
    assert page.errors == []
    print(f"{chapter.name}: {len(nb.cells)} cells, the last one shown "
          f"({last.inner_text().strip()[:40]!r}), "
          f"cells 1-{upto + 1} ran, no error; saved and staged: the source "
          f"({'byte for byte' if same_bytes else 'but for the kernel display name'})")


@pytest.fixture(scope="module")
def tiny_adapter_run(lab, tiny_model_dir):
    """A run folder holding a LoRA adapter of the tiny model where chapter 04 leaves one
    (initialised, not trained: what the sliders need is an adapter to load)."""
    run_dir = lab.root / "run-tiny"
    base, _ = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    make_lora_model(base, config_for("smoke")).save_pretrained(
        default_out_dir(run_dir, "temporal") / "adapter")
    return run_dir


def test_decoding_sliders_on_the_tiny_model(page, lab, tiny_model_dir, tiny_adapter_run, ml100k,
                                            tmp_path):
    path = decoding_notebook(lab.root, name="tiny", model=str(tiny_model_dir), profile="smoke",
                             dtype="float32", device="cpu", n_shots=1, max_new_tokens=16,
                             run_dir=str(tiny_adapter_run), interactive=True)
    seen = use_the_sliders(page, lab, path, ml100k, slow_model=False)

    # the chapter-04 adapter is offered, loaded on first pick, and generates with its prompt
    model = page.locator(".llmrec-model select")
    labels = model.locator("option").all_inner_texts()
    assert len(labels) == 2 and "untuned" in labels[0] and "LoRA-tuned" in labels[1]
    Sliders(page).watch_status()
    model.select_option(index=1)
    Sliders(page).wait_ready("LoRA-tuned")
    assert any("loading and generating" in s for s in Sliders(page).states())
    seen["tuned_heading"] = Sliders(page).heading()

    assert seen["run_all_to_sliders_s"] < 60
    saved = save_and_read(page, path)
    assert error_outputs(saved) == []
    assert page.errors == []
    Sliders(page).root.screenshot(path=str(tmp_path / "sliders-tiny.png"))
    print("\n" + json.dumps(seen, indent=1, ensure_ascii=False))


@pytest.mark.slow
def test_decoding_sliders_on_smollm2(page, lab, ml100k):
    if not assets.is_ready("smollm2-135m"):
        pytest.skip("smollm2-135m not converted yet (python -m llmrec assets fetch smollm2-135m)")
    run_dir = lab.root / "run-smollm2"
    base, _ = load_model("smollm2-135m", dtype="float32", device="cpu")
    make_lora_model(base, config_for("cpu")).save_pretrained(
        default_out_dir(run_dir, "temporal") / "adapter")  # initialised: enough to be offered
    del base
    path = decoding_notebook(lab.root, name="smollm2-135m", model="smollm2-135m", profile="cpu",
                             run_dir=str(run_dir), interactive=True)
    seen = use_the_sliders(page, lab, path, ml100k, slow_model=True)
    assert seen["run_all_to_sliders_s"] < 90
    shot = os.environ.get("LLMREC_SCREENSHOT")
    if shot:  # the README's picture: the sliders after the drag, a real model's titles
        page.locator(".llmrec-sliders").screenshot(path=shot)
        seen["screenshot"] = shot

    start = time.perf_counter()
    page.locator(".llmrec-model select").select_option(index=1)
    page.locator(".llmrec-status [data-state=busy]").wait_for(timeout=5_000)
    Sliders(page).wait_ready("LoRA-tuned", timeout=300)
    seen["tuned_load_and_generate_s"] = round(time.perf_counter() - start, 1)
    seen["tuned_heading"] = Sliders(page).heading()
    saved = save_and_read(page, path)
    assert error_outputs(saved) == []
    assert page.errors == []
    print("\n" + json.dumps(seen, indent=1, ensure_ascii=False))
    assert html.unescape(seen["completion"]).strip()
