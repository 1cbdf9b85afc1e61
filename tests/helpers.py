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
