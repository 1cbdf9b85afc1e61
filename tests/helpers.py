"""Test helpers importable from any test module (pytest puts tests/ on sys.path)."""
import shutil

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def populate_hf_cache(cache_dir, repo_id, model_file, revision="main"):
    """Lay out a file the way ``hf_hub_download`` caches it (refs, snapshots); returns the commit."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / revision).write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    shutil.copy(model_file, snapshot / "pytorch_model.bin")
    return COMMIT


def load_from_offline_hub(cache_dir, repo_id, model_file, attribute):
    """In a fresh process with only ``ASTEROID_CACHE`` and ``HF_HUB_OFFLINE=1`` set, load ``repo_id``
    from a cache populated with ``model_file`` through ``BaseModel.from_pretrained``.

    Returns what it prints: the class name and ``str(model.<attribute>)``.
    """
    import os
    import subprocess
    import sys

    populate_hf_cache(cache_dir, repo_id, model_file)
    env = dict(os.environ, ASTEROID_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
    code = ("import asteroid_unet; from asteroid.models import BaseModel; "
            f"m = BaseModel.from_pretrained({repo_id!r}); print(type(m).__name__, m.{attribute})")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()
