"""Running the stages in tests: on a small generated corpus, as the scripts run them."""
import json
import os
import shutil
import subprocess
import sys

from conftest import REPO
from corpus import KNOWN, make_corpus
from sourcetrace import cli
from sourcetrace.registry import STAGES

SCRIPTS = {n: s.script for n, s in STAGES.items()}
_completed: dict = {}


def make(tmp_path, **kwargs):
    corpus = make_corpus(tmp_path, **{"enroll_per_attack": 3, "trials_per_attack": 2, "sizes": (1, 2),
                                      "min_s": 0.3, "max_s": 0.6, **kwargs})
    config = json.loads((REPO / "config" / "AASIST.conf").read_text())
    config.update(model_path=str(REPO / "models" / "AASIST_CM.pth"), database_path=str(corpus.database),
                  enroll_protocol_dir=str(corpus.enroll_dir), trial_protocol_dir=str(corpus.trial_dir),
                  output_dir=str(tmp_path / "out"), known_attacks=KNOWN, num_workers=0, batch_size=2,
                  device="cpu")
    (tmp_path / "sys.conf").write_text(json.dumps(config))
    return corpus


def stage(tmp_path, number, *extra):
    """Run one stage in this process exactly as its script does; returns the exit status."""
    return cli.main(number, ["--config", str(tmp_path / "sys.conf"), *extra])


def script(tmp_path, number, *extra, env=None, **kwargs):
    """Run one stage script in a subprocess."""
    return subprocess.run([sys.executable, str(REPO / SCRIPTS[number]), "--config", str(tmp_path / "sys.conf"), *extra],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, **kwargs)


def run_all(tmp_path, capsys, *extra, upto=5):
    for number in range(1, upto + 1):
        status = stage(tmp_path, number, *extra)
        captured = capsys.readouterr()
        assert status == 0, captured.err
    return captured


def error_of(tmp_path, capsys, number, *extra):
    status = stage(tmp_path, number, *extra)
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def completed(tmp_path, tmp_path_factory):
    """A corpus with all five stages run, as `make` + `run_all` give, copied into `tmp_path`.

    The run is made once per session; copies keep every file's modification time, so each
    copy is current exactly as the original run was."""
    if "base" not in _completed:
        base = tmp_path_factory.mktemp("completed")
        make(base)
        for number in range(1, 6):
            assert stage(base, number, "-q") == 0
        _completed["base"] = base
    base = _completed["base"]
    shutil.copytree(base, tmp_path, symlinks=True, dirs_exist_ok=True)
    config = (base / "sys.conf").read_text().replace(str(base), str(tmp_path))
    (tmp_path / "sys.conf").write_text(config)
    return tmp_path
